"""A realistic, healthy, simulated fleet in wire format, with its ground truth.

Pure generation (numpy, no I/O): ``dexscope simulate`` (:mod:`dexscope.simulate_cli`) writes
what this module produces, or enrolls and uploads it to a collector.

Determinism: everything is drawn from numpy generators seeded by ``seed`` (the devices: by
seed and device index only, so a fleet keeps its devices whatever the period; the events:
by seed, device index, ``end`` and ``days``). The same arguments give the same bytes.

The period is ``[end - days, end)`` in UTC; ``end`` defaults (in the command) to now rounded
down to the hour, because the collector rejects events older than 35 days or more than
10 minutes in the future: a simulated period must end near the time it is uploaded. No event
(and no ``booted_at``) falls outside the period.

The fleet
---------
- **Sites** (:data:`SITES`): London, New York, Bangalore, Sydney, each with its time zone and
  its own public holidays (``days // 15`` weekdays of the period, at most 2, drawn per site).
- **Personas** (:data:`PERSONAS`): knowledge_worker 50 %, developer 15 %,
  contact_centre_agent 15 %, field_worker 12 %, executive 8 %. A persona sets the working hours
  (local time, with a per-device offset and a daily jitter), the mix of hardware classes and
  operating systems, the app portfolio and the probed business apps. It is sent as
  ``persona_hint`` at enrollment.
- **Hardware classes** (:data:`HARDWARE_CLASSES`): low / mid / high, with ``cpu_count``,
  ``memory_mb``, boot and sign-in medians, CPU and memory baselines, hang and crash rates.
- **Operating systems**: mostly Windows (11 23H2 / 24H2, some 10), some macOS, a few Linux
  (developers lean to macOS and Linux). App names follow the OS (``outlook.exe`` /
  ``Microsoft Outlook``...); Linux has no Outlook/Excel.
- **Apps** (:data:`APPS`): a portfolio per persona with weights (share of foreground time and
  of hangs); most devices run the current version, about 15 % one version behind. During the
  period some apps get a fleet-wide update (a release day, then each device installs it at
  its next boot 0-3 working days later): a ``software_change`` ``update`` event, after which
  the app's events carry the new version.

Per working day of a device (weekdays that are not a site holiday, not one of the device's
random days off, about 4 %, and not before the device's first day: about 3 % of devices are
new and join during the period):

- ``boot`` before the start of work: lognormal duration by hardware class (cold), sometimes a
  Windows fast startup or a resume (much shorter); Windows reports ``main_path_s`` and
  ``post_boot_s``, Linux the systemd phases;
- ``logon`` after the boot, lognormal by hardware class (1-600 s), and a second sign-in after
  lunch on about a quarter of the days; ``first_logon`` is true only for the first sign-in of
  a new device (one that joins during the period), which takes longer (median 90 s: the
  user's profile is built);
- ``resource_sample`` every 5 minutes from the boot to the end of the working day
  (``interval_s`` 300; CPU and memory percentages around the class baseline, small pressure
  seconds);
- ``app_resource`` every hour for each app of the portfolio (CPU seconds, RSS, foreground time
  by the app's weight);
- ``app_hang``: Poisson per active hour (rate by hardware class), the app drawn by portfolio
  weight, ``hang_duration_s`` lognormal (median 8 s); ``app_crash``: rare, with
  ``app_version``, ``faulting_module`` and ``exception_code``; ``system_crash``: very rare;
- ``probe`` of the persona's 1-2 business web apps every hour (rare failures);
- ``agent_health`` every hour while the device is on.

Surveys: a weekly pulse (``campaign_id`` ``sim-pulse``, ``trigger`` ``pulse``,
``question_type`` ``stars``); a device leaves a ``survey_response`` in about 5 % of its
working weeks, at a random time of a random working day of that week. The outcome is
``answered`` (80 %), ``dismissed`` (12 %) or ``expired`` (8 %). An answer follows the device's
experience that week: ``e = 1 - 0.08·hangs - 0.25·app crashes - 0.6·system crashes -
max(0, (median boot s - 40) / 100)`` clipped to [0, 1], then
``value = clip(round(1.5 + 3.5·e + bias + N(0, 0.8)), 1, 5)`` with a per-device bias N(0, 0.3).

Ground truth: ``incidents`` is empty for a healthy fleet. An :class:`Injector`
(:mod:`scoring.incidents`) may change a device's events before ids are given and report the
incidents it injected; an injector with a ``tickets_for(device)`` method also raises the
tickets of that device's user (kept when opened inside the period). Background tickets
(:data:`TICKET_FIELDS`): about 0.3 % of device working days open a ticket unrelated to
telemetry (password resets, printers, access requests...).

Batches: a device's events sorted by time, in chunks of at most ``batch_events`` (500);
``batch_id`` is a UUID derived from the device id and the batch's first and last event ids
(a new period gives new ids; a replay of the same output is a duplicate at the collector);
``sent_at`` is the time a real agent would have sent it (last event + up to a minute,
never after ``end``). The collector shifts events when ``sent_at`` is more than 2 minutes off
its clock, so an uploader must set ``sent_at`` to the upload time (the command does).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from dexscope import __version__
from dexscope.wire import SCHEMA_VERSION

__all__ = [
    "APPS",
    "HARDWARE_CLASSES",
    "PERSONAS",
    "SITES",
    "TICKET_FIELDS",
    "TICKET_OUTCOME_FIELDS",
    "DeviceOutput",
    "Injector",
    "SimConfig",
    "SimDevice",
    "Site",
    "batch_json",
    "fleet_releases",
    "make_device",
    "make_devices",
    "make_sites",
    "simulate_device",
    "simulate_fleet",
    "ticket_outcomes",
]

_NS: Final = uuid.UUID("6d1f0c52-6a43-4f4b-9d0e-3c1b5e2f7a90")
"""Namespace of the simulator's derived UUIDs (device ids, batch ids)."""

TICKET_FIELDS: Final = (
    "external_id",
    "opened_at",
    "device_hostname",
    "user",
    "category",
    "summary",
    "incident_id",
)
"""The columns of ``tickets.csv``, in order (``incident_id``: the injected incident the ticket
belongs to, empty for a background ticket)."""

TICKET_OUTCOME_FIELDS: Final = ("resolved_at", "first_contact_resolution")
"""Service-desk outcome columns added to ``tickets.csv`` after :data:`TICKET_FIELDS`, from
:func:`ticket_outcomes` (what SLA figures are computed from)."""

SITES: Final[tuple[tuple[str, str, str, float], ...]] = (
    ("London", "LON", "Europe/London", 0.4),
    ("New York", "NYC", "America/New_York", 0.3),
    ("Bangalore", "BLR", "Asia/Kolkata", 0.2),
    ("Sydney", "SYD", "Australia/Sydney", 0.1),
)
"""(name, code, time zone, share of devices)."""

HARDWARE_CLASSES: Final[dict[str, dict[str, Any]]] = {
    "low": {
        "cpu_count": 4,
        "memory_mb": 8192,
        "model": "Contoso Book 14 G1",
        "boot_median_s": 55.0,
        "logon_median_s": 22.0,
        "cpu_base": 30.0,
        "memory_base": 64.0,
        "hangs_per_hour": 0.04,
        "crashes_per_hour": 0.005,
    },
    "mid": {
        "cpu_count": 8,
        "memory_mb": 16384,
        "model": "Contoso Book 14 G3",
        "boot_median_s": 32.0,
        "logon_median_s": 14.0,
        "cpu_base": 20.0,
        "memory_base": 50.0,
        "hangs_per_hour": 0.02,
        "crashes_per_hour": 0.003,
    },
    "high": {
        "cpu_count": 16,
        "memory_mb": 32768,
        "model": "Contoso Workstation 16 G2",
        "boot_median_s": 18.0,
        "logon_median_s": 9.0,
        "cpu_base": 12.0,
        "memory_base": 38.0,
        "hangs_per_hour": 0.01,
        "crashes_per_hour": 0.002,
    },
}
"""Hardware classes: what they report at enrollment and how they behave."""

_SYSTEM_CRASHES_PER_HOUR: Final = 0.0003

APPS: Final[dict[str, dict[str, Any]]] = {
    "outlook": {
        "names": {"windows": "outlook.exe", "macos": "Microsoft Outlook"},
        "versions": ("16.0.17928.20114", "16.0.18025.20104", "16.0.18129.20116"),
        "modules": ("mso.dll", "olmapi32.dll", "ntdll.dll"),
        "rss_mb": 420.0,
    },
    "teams": {
        "names": {"windows": "teams.exe", "macos": "Microsoft Teams", "linux": "teams-for-linux"},
        "versions": ("24243.1309.3132.617", "24277.3502.3161.3007", "24295.605.3225.8804"),
        "modules": ("msedgewebview2.dll", "ntdll.dll", "KERNELBASE.dll"),
        "rss_mb": 650.0,
    },
    "chrome": {
        "names": {"windows": "chrome.exe", "macos": "Google Chrome", "linux": "chrome"},
        "versions": ("129.0.6668.101", "130.0.6723.117", "131.0.6778.86"),
        "modules": ("chrome.dll", "chrome_elf.dll"),
        "rss_mb": 900.0,
    },
    "excel": {
        "names": {"windows": "excel.exe", "macos": "Microsoft Excel"},
        "versions": ("16.0.17928.20114", "16.0.18025.20104", "16.0.18129.20116"),
        "modules": ("excel.exe", "mso20win32client.dll"),
        "rss_mb": 300.0,
    },
    "erp": {
        "names": {"windows": "contoso-erp.exe", "macos": "Contoso ERP", "linux": "contoso-erp"},
        "versions": ("7.60.1", "7.70.0", "7.70.2"),
        "modules": ("erpcore.dll", "ntdll.dll"),
        "rss_mb": 250.0,
    },
    "crm": {
        "names": {"windows": "contoso-crm.exe", "macos": "Contoso CRM", "linux": "contoso-crm"},
        "versions": ("5.2.0", "5.3.1", "5.4.0"),
        "modules": ("crmclient.dll", "ntdll.dll"),
        "rss_mb": 350.0,
    },
    "fieldpro": {
        "names": {"windows": "fieldpro.exe", "macos": "FieldPro", "linux": "fieldpro"},
        "versions": ("3.1.4", "3.2.0", "3.2.1"),
        "modules": ("fieldsync.dll", "ntdll.dll"),
        "rss_mb": 200.0,
    },
    "vscode": {
        "names": {"windows": "code.exe", "macos": "Code", "linux": "code"},
        "versions": ("1.93.1", "1.94.2", "1.95.3"),
        "modules": ("node.dll", "ntdll.dll"),
        "rss_mb": 700.0,
    },
}
"""The app catalogue: name per OS (absent: not on that OS), versions (oldest first; the
second-newest is the fleet's current version at the start, the newest its update)."""

PERSONAS: Final[dict[str, dict[str, Any]]] = {
    "knowledge_worker": {
        "share": 0.50,
        "hours": (8.5, 17.5),
        "hardware": {"low": 0.25, "mid": 0.60, "high": 0.15},
        "os": {"windows": 0.90, "macos": 0.09, "linux": 0.01},
        "apps": {"outlook": 0.30, "teams": 0.25, "chrome": 0.20, "excel": 0.15, "erp": 0.10},
        "probes": ("intranet.contoso.example", "erp.contoso.example"),
        "busy": 1.0,
    },
    "developer": {
        "share": 0.15,
        "hours": (9.5, 18.5),
        "hardware": {"low": 0.05, "mid": 0.35, "high": 0.60},
        "os": {"windows": 0.55, "macos": 0.30, "linux": 0.15},
        "apps": {"vscode": 0.35, "chrome": 0.30, "teams": 0.20, "outlook": 0.15},
        "probes": ("git.contoso.example",),
        "busy": 1.6,
    },
    "contact_centre_agent": {
        "share": 0.15,
        "hours": (8.0, 16.0),
        "hardware": {"low": 0.50, "mid": 0.45, "high": 0.05},
        "os": {"windows": 1.0, "macos": 0.0, "linux": 0.0},
        "apps": {"crm": 0.40, "teams": 0.25, "chrome": 0.20, "outlook": 0.15},
        "probes": ("crm.contoso.example", "intranet.contoso.example"),
        "busy": 1.2,
    },
    "field_worker": {
        "share": 0.12,
        "hours": (7.0, 15.5),
        "hardware": {"low": 0.40, "mid": 0.55, "high": 0.05},
        "os": {"windows": 0.95, "macos": 0.05, "linux": 0.0},
        "apps": {"fieldpro": 0.50, "outlook": 0.20, "teams": 0.20, "chrome": 0.10},
        "probes": ("fieldpro.contoso.example",),
        "busy": 0.6,
    },
    "executive": {
        "share": 0.08,
        "hours": (7.5, 19.0),
        "hardware": {"low": 0.0, "mid": 0.50, "high": 0.50},
        "os": {"windows": 0.70, "macos": 0.30, "linux": 0.0},
        "apps": {"outlook": 0.40, "teams": 0.30, "excel": 0.15, "chrome": 0.15},
        "probes": ("intranet.contoso.example",),
        "busy": 0.9,
    },
}
"""Personas: share of the fleet, working hours (local), hardware and OS mix, app portfolio
(weights), probed business apps, and how busy the machine is (CPU factor)."""

_OS_VERSIONS: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    "windows": (("10.0.22631", 0.60), ("10.0.26100", 0.25), ("10.0.19045", 0.15)),
    "macos": (("14.7.1", 0.4), ("15.1.1", 0.6)),
    "linux": (("6.8.0-49-generic", 0.7), ("6.11.0-9-generic", 0.3)),
}
_TICKETS: Final = (
    ("password_reset", "Password reset requested"),
    ("printer", "Cannot print to the floor printer"),
    ("access_request", "Access to a shared folder"),
    ("hardware", "Docking station not detecting the second monitor"),
    ("software_request", "Install request for a licensed tool"),
    ("vpn", "VPN asks for MFA twice"),
    ("email", "Mailbox nearly full"),
    ("peripheral", "Headset microphone not recognised"),
)
_SURVEY_INPUTS: Final = frozenset({"app_hang", "app_crash", "system_crash", "boot"})
_SAMPLE_S: Final = 300.0
_PROBE_S: Final = 3600.0
_HOUR_S: Final = 3600.0


@dataclass(frozen=True)
class SimConfig:
    """What to simulate: ``devices`` devices over the ``days`` days that end at ``end``."""

    devices: int
    days: int
    seed: int
    end: datetime
    """End of the period (UTC-aware; exclusive)."""
    batch_events: int = 500
    agent_version: str = __version__
    pulse_response: float = 0.05
    """Share of a device's working weeks with a pulse survey outcome."""

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.end.tzinfo is None or self.end.utcoffset() is None:
            raise ValueError("end must carry a UTC offset")
        if not 1 <= self.batch_events <= 5000:
            raise ValueError("batch_events must be within 1..5000")

    @property
    def start(self) -> datetime:
        """Start of the period (inclusive)."""
        return self.end - timedelta(days=self.days)

    @property
    def start_epoch(self) -> float:
        """Start of the period, POSIX seconds."""
        return self.start.timestamp()

    @property
    def end_epoch(self) -> float:
        """End of the period, POSIX seconds."""
        return self.end.timestamp()


@dataclass(frozen=True)
class Site:
    """A site: its time zone and its holidays (local dates) in the period."""

    name: str
    code: str
    timezone: str
    holidays: tuple[date, ...]


@dataclass(frozen=True)
class SimDevice:
    """One simulated device: identity, persona, hardware, site, hours and apps."""

    index: int
    device_id: str
    hostname: str
    user: str
    user_hash: str
    os: str
    os_version: str
    hardware_class: str
    persona: str
    site: str
    timezone: str
    work_start_h: float
    work_end_h: float
    joins_at: float
    """0 for a device in use from the start; for a new device (about 3 %), the fraction of
    the period after which it is first used."""
    apps: tuple[tuple[str, str, str, float], ...]
    """(catalogue key, app name on this OS, version at the start, weight)."""
    probes: tuple[str, ...]
    satisfaction_bias: float

    def hardware(self) -> dict[str, str | int | float | bool | None]:
        """The ``hardware`` object sent at enrollment."""
        spec = HARDWARE_CLASSES[self.hardware_class]
        return {
            "cpu_count": spec["cpu_count"],
            "memory_mb": spec["memory_mb"],
            "model": spec["model"],
            "hardware_class": self.hardware_class,
        }

    def enroll_request(self, enrollment_token: str, agent_version: str) -> dict[str, Any]:
        """The :class:`dexscope.wire.EnrollRequest` of this device."""
        return {
            "enrollment_token": enrollment_token,
            "hostname": self.hostname,
            "os": self.os,
            "os_version": self.os_version,
            "hardware": self.hardware(),
            "agent_version": agent_version,
            "persona_hint": self.persona,
            "tags": {"site": self.site},
        }

    def as_json(self) -> dict[str, Any]:
        """This device as an entry of ``devices.json``."""
        spec = HARDWARE_CLASSES[self.hardware_class]
        return {
            "id": self.device_id,
            "hostname": self.hostname,
            "user": self.user,
            "os": self.os,
            "os_version": self.os_version,
            "hardware_class": self.hardware_class,
            "cpu_count": spec["cpu_count"],
            "memory_mb": spec["memory_mb"],
            "site": self.site,
            "timezone": self.timezone,
            "persona": self.persona,
            "tags": {"site": self.site},
            "working_hours": [round(self.work_start_h, 2), round(self.work_end_h, 2)],
            "apps": [
                {"app": key, "name": name, "version": version, "weight": weight}
                for key, name, version, weight in self.apps
            ],
            "probes": list(self.probes),
        }


class Injector(Protocol):
    """Changes a device's events to plant incidents (:mod:`scoring.incidents`), and reports
    them.

    ``apply`` sees the device's events before they get ids: dicts with ``type``, ``ts`` (and
    ``booted_at`` for boots) as POSIX seconds (floats) and the wire fields; it returns the
    new list (events outside the period are dropped afterwards).
    """

    def apply(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> list[dict[str, Any]]:
        """The device's events with the incident applied."""
        ...

    def incidents(self) -> list[dict[str, Any]]:
        """The ground truth of what was injected (entries of ``incidents.json``)."""
        ...


@dataclass
class DeviceOutput:
    """Everything simulated for one device."""

    device: SimDevice
    events: list[dict[str, Any]]
    """Wire events (JSON-ready: ids and times as strings), sorted by time."""
    batches: list[dict[str, Any]]
    """Wire batches around ``events`` (JSON-ready)."""
    tickets: list[dict[str, str]]
    """Background tickets opened from this device (``external_id`` not yet numbered)."""
    working_days: list[date] = field(default_factory=list)
    days_off: list[date] = field(default_factory=list)

    def ground_truth(self) -> dict[str, Any]:
        """The device's ``devices.json`` entry with its working days and days off."""
        return {
            **self.device.as_json(),
            "working_days": [d.isoformat() for d in self.working_days],
            "days_off": [d.isoformat() for d in self.days_off],
            "events": len(self.events),
            "batches": len(self.batches),
        }


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random (version 4 layout) UUID strings drawn from ``rng``."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(n, 32)
    text = np.full((n, 37), ord("-"), dtype=np.uint8)
    text[:, 0:8] = hexed[:, 0:8]
    text[:, 9:13] = hexed[:, 8:12]
    text[:, 14:18] = hexed[:, 12:16]
    text[:, 19:23] = hexed[:, 16:20]
    text[:, 24:36] = hexed[:, 20:32]
    text[:, 36] = ord("\n")
    return text.tobytes().decode().split("\n")[:n]


def _iso(ts: npt.NDArray[np.float64]) -> list[str]:
    """POSIX seconds to ISO 8601 UTC strings with milliseconds and ``Z``."""
    ms = np.round(ts * 1000.0).astype(np.int64).astype("datetime64[ms]")
    if len(ms) == 0:
        return []
    return ("Z\n".join(np.datetime_as_string(ms, unit="ms").tolist()) + "Z").split("\n")


def _local_dates(config: SimConfig, tz: ZoneInfo) -> list[date]:
    first = config.start.astimezone(tz).date()
    last = config.end.astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def make_sites(config: SimConfig) -> list[Site]:
    """The sites with their holidays in the period (drawn from the seed)."""
    sites = []
    for i, (name, code, tz_name, _share) in enumerate(SITES):
        rng = np.random.default_rng([config.seed, 2, i, int(config.end_epoch), config.days])
        weekdays = [d for d in _local_dates(config, ZoneInfo(tz_name)) if d.weekday() < 5]
        n = min(2, config.days // 15, len(weekdays))
        picked = sorted(weekdays[j] for j in rng.choice(len(weekdays), size=n, replace=False))
        sites.append(Site(name, code, tz_name, tuple(picked)))
    return sites


def make_devices(config: SimConfig) -> list[SimDevice]:
    """The fleet's devices (depend on the seed and the device index only)."""
    return [make_device(config, i) for i in range(config.devices)]


def make_device(config: SimConfig, index: int) -> SimDevice:
    """Device ``index`` of the fleet (depends on the seed and the index only)."""
    rng = np.random.default_rng([config.seed, 1, index])
    persona = _choice(rng, {k: v["share"] for k, v in PERSONAS.items()})
    spec = PERSONAS[persona]
    site_i = int(rng.choice(len(SITES), p=np.array([s[3] for s in SITES])))
    site_name, code, tz_name, _ = SITES[site_i]
    os_name = _choice(rng, spec["os"])
    os_version = _choice(rng, dict(_OS_VERSIONS[os_name]))
    hw = _choice(rng, spec["hardware"])
    shift = float(rng.normal(0.0, 0.4))
    start_h, end_h = spec["hours"]
    if persona == "contact_centre_agent" and rng.random() < 0.4:
        start_h, end_h = 12.0, 20.0  # the late shift
    apps = []
    for key, weight in spec["apps"].items():
        name = APPS[key]["names"].get(os_name)
        if name is None:
            continue
        versions = APPS[key]["versions"]
        version = versions[0] if rng.random() < 0.15 else versions[1]
        apps.append((key, name, version, weight))
    total = sum(a[3] for a in apps)
    apps = [(k, n, v, round(w / total, 4)) for k, n, v, w in apps]
    joins_at = float(rng.uniform(0.05, 0.95)) if rng.random() < 0.03 else 0.0
    device_id = str(uuid.uuid5(_NS, f"device/{config.seed}/{index}"))
    kind = "LT" if persona in ("knowledge_worker", "field_worker", "executive") else "WS"
    return SimDevice(
        index=index,
        device_id=device_id,
        hostname=f"{code}-{kind}{index:05d}",
        user=f"user{index:05d}",
        user_hash=rng.bytes(32).hex(),
        os=os_name,
        os_version=os_version,
        hardware_class=hw,
        persona=persona,
        site=site_name,
        timezone=tz_name,
        work_start_h=start_h + shift,
        work_end_h=end_h + shift + float(rng.normal(0.0, 0.3)),
        joins_at=joins_at,
        apps=tuple(apps),
        probes=tuple(spec["probes"]),
        satisfaction_bias=float(rng.normal(0.0, 0.3)),
    )


def _r(values: npt.NDArray[np.float64], digits: int = 2) -> list[float]:
    rounded: list[float] = np.round(values, digits).tolist()
    return rounded


@dataclass
class _Day:
    local: date
    on: float
    off: float
    week: int


def fleet_releases(config: SimConfig) -> dict[str, float]:
    """Release time (POSIX s) of each app update in the period (absent: no update)."""
    rng = np.random.default_rng([config.seed, 3, int(config.end_epoch), config.days])
    releases = {}
    for key in APPS:
        if rng.random() < 0.5:
            releases[key] = config.start_epoch + float(rng.uniform(0.1, 0.8)) * config.days * 86400
    return releases


def simulate_device(
    config: SimConfig,
    device: SimDevice,
    sites: Sequence[Site],
    releases: dict[str, float] | None = None,
    injectors: Sequence[Injector] = (),
) -> DeviceOutput:
    """Simulate one device over the period: its events, batches and background tickets."""
    rng = np.random.default_rng([config.seed, 4, device.index, int(config.end_epoch), config.days])
    if releases is None:
        releases = fleet_releases(config)
    site = next(s for s in sites if s.name == device.site)
    tz = ZoneInfo(device.timezone)
    hwc = HARDWARE_CLASSES[device.hardware_class]
    start, end = config.start_epoch, config.end_epoch

    days: list[_Day] = []
    days_off: list[date] = []
    local_dates = _local_dates(config, tz)
    first_day = int(device.joins_at * len(local_dates))
    for i, local in enumerate(local_dates):
        off_draw = rng.random()
        jitter = rng.normal(0.0, 0.25, size=2)
        if local.weekday() >= 5 or local in site.holidays or i < first_day:
            continue
        midnight = datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()
        on = midnight + (device.work_start_h + float(jitter[0])) * _HOUR_S
        off = midnight + (device.work_end_h + float(jitter[1])) * _HOUR_S
        if off <= start or on - 1800.0 >= end:  # the working day is outside the period
            continue
        if off_draw < 0.04:
            days_off.append(local)
            continue
        days.append(_Day(local, on, off, int((on - start) // (7 * 86400))))

    events: list[dict[str, Any]] = []
    tickets: list[dict[str, str]] = []
    n = len(days)
    is_windows = device.os == "windows"
    if n:
        day_on = np.array([d.on for d in days])
        # Boots: cold mostly; Windows fast startup and resumes are much shorter.
        kind_draw = rng.random(n)
        cold = rng.lognormal(np.log(hwc["boot_median_s"]), 0.35, n)
        short = rng.lognormal(np.log(hwc["boot_median_s"] * 0.3), 0.3, n)
        boot_lead = rng.uniform(300, 1200, n)
        logon_s = np.clip(rng.lognormal(np.log(hwc["logon_median_s"]), 0.45, n), 1.0, 600.0)
        new_device = device.joins_at > 0
        if new_device:  # the first sign-in builds the user's profile: much longer
            logon_s[0] = min(600.0, float(rng.lognormal(np.log(90.0), 0.3)))
        second = rng.random(n) < 0.25
        logon2_s = np.clip(rng.lognormal(np.log(hwc["logon_median_s"] * 0.6), 0.45, n), 1.0, 600)
        lunch = rng.uniform(12.0, 14.0, n)
        boot_s = np.where(kind_draw < 0.75, cold, short)
        booted_at = day_on - boot_lead
        boot_done = booted_at + boot_s
        logon_ts = boot_done + rng.uniform(20, 120, n) + logon_s
        for j, day in enumerate(days):
            kind = (
                "cold"
                if kind_draw[j] < 0.75
                else ("fast_startup" if is_windows and kind_draw[j] < 0.92 else "resume")
            )
            dur = float(round(boot_s[j], 2))
            boot: dict[str, Any] = {
                "type": "boot",
                "ts": float(boot_done[j]),
                "booted_at": float(booted_at[j]),
                "boot_duration_s": dur,
                "boot_kind": kind,
            }
            if is_windows:
                boot["main_path_s"] = round(dur * 0.7, 2)
                boot["post_boot_s"] = round(dur * 0.3, 2)
                boot["source"] = "Microsoft-Windows-Diagnostics-Performance"
            elif device.os == "linux":
                boot.update(
                    firmware_s=round(dur * 0.2, 2),
                    loader_s=round(dur * 0.05, 2),
                    kernel_s=round(dur * 0.15, 2),
                    initrd_s=round(dur * 0.1, 2),
                    userspace_s=round(dur * 0.5, 2),
                    source="systemd-analyze",
                )
            else:
                boot["source"] = "boot-time"
            events.append(boot)
            logon_source = {
                "windows": "Microsoft-Windows-Winlogon",
                "macos": "unifiedlog-loginwindow",
                "linux": "journald-logind",
            }[device.os]
            events.append(
                {
                    "type": "logon",
                    "ts": float(logon_ts[j]),
                    "logon_duration_s": round(float(logon_s[j]), 2),
                    "first_logon": new_device and j == 0,
                    "desktop_ready_s": round(float(logon_s[j]) * 0.8, 2),
                    "user_hash": device.user_hash,
                    "source": logon_source,
                }
            )
            if second[j]:
                midnight = datetime(
                    day.local.year, day.local.month, day.local.day, tzinfo=tz
                ).timestamp()
                t2 = midnight + float(lunch[j]) * _HOUR_S
                if day.on < t2 < day.off:
                    events.append(
                        {
                            "type": "logon",
                            "ts": t2,
                            "logon_duration_s": round(float(logon2_s[j]), 2),
                            "first_logon": False,
                            "user_hash": device.user_hash,
                            "source": logon_source,
                        }
                    )
        installs = _install_times(rng, days, boot_done, releases)
        installed = {k: v[0] for k, v in installs.items()}
        events.extend(_periodic(rng, device, hwc, days, boot_done, installed))
        events.extend(_incidents(rng, device, hwc, days, boot_done, installed))
        events.extend(_software_changes(device, installed))
        notable = [e for e in events if e["type"] in _SURVEY_INPUTS]
        events.extend(_surveys(rng, config, device, days, notable))
        for j in np.flatnonzero(rng.random(n) < 0.003).tolist():
            category, summary = _TICKETS[int(rng.integers(len(_TICKETS)))]
            t = float(rng.uniform(days[j].on, days[j].off))
            if start <= t < end:
                tickets.append(
                    {
                        "external_id": "",
                        "opened_at": _iso(np.array([t]))[0],
                        "device_hostname": device.hostname,
                        "user": device.user,
                        "category": category,
                        "summary": summary,
                        "incident_id": "",
                    }
                )

    for injector in injectors:
        events = injector.apply(device, events, rng, config)
        raised = getattr(injector, "tickets_for", None)
        if callable(raised):
            tickets.extend(t for t in raised(device) if start <= _parse_iso(t["opened_at"]) < end)
    events = [e for e in events if start <= e["ts"] < end and start <= e.get("booted_at", start)]
    events.sort(key=lambda e: e["ts"])
    ts = np.array([e["ts"] for e in events])
    final = _finalise(rng, events)
    batches = _batches(config, device, final, ts)
    return DeviceOutput(
        device=device,
        events=final,
        batches=batches,
        tickets=tickets,
        working_days=[d.local for d in days],
        days_off=days_off,
    )


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _version_at(key: str, version: str, t: float, installed: dict[str, float]) -> str:
    at = installed.get(key)
    if at is not None and t >= at:
        return str(APPS[key]["versions"][-1])
    return version


def _install_times(
    rng: np.random.Generator,
    days: list[_Day],
    boot_done: npt.NDArray[np.float64],
    releases: dict[str, float],
) -> dict[str, tuple[float, int]]:
    """When the device installs each released update: (time, day index)."""
    out: dict[str, tuple[float, int]] = {}
    for key in sorted(releases):
        lag = int(rng.integers(0, 4))
        idx = [j for j, d in enumerate(days) if d.on >= releases[key]]
        if len(idx) > lag:
            j = idx[lag]
            out[key] = (float(boot_done[j] + rng.uniform(120, 900)), j)
    return out


def _periodic(
    rng: np.random.Generator,
    device: SimDevice,
    hwc: dict[str, Any],
    days: list[_Day],
    boot_done: npt.NDArray[np.float64],
    installed: dict[str, float],
) -> list[dict[str, Any]]:
    """resource_sample, app_resource, probe and agent_health while the device is on."""
    spec = PERSONAS[device.persona]
    out: list[dict[str, Any]] = []
    mem_total = float(hwc["memory_mb"])
    cpu_base = hwc["cpu_base"] * spec["busy"]
    sample_ts = [
        np.arange(b + _SAMPLE_S, d.off, _SAMPLE_S) for b, d in zip(boot_done, days, strict=True)
    ]
    ts = np.concatenate(sample_ts) if sample_ts else np.zeros(0)
    m = len(ts)
    cpu = np.clip(rng.gamma(2.0, cpu_base / 2.0, m), 0.5, 100.0)
    mem = np.clip(hwc["memory_base"] + rng.normal(0, 6, m), 5.0, 99.0)
    cpu_p = rng.exponential(0.3, m) * (cpu / 50.0)
    mem_p = np.where(mem > 80, rng.exponential(0.5, m), rng.exponential(0.02, m))
    io_p = rng.exponential(0.2, m)
    avail = mem_total * (1.0 - mem / 100.0)
    for t, c, mm, a, cp, mp, ip in zip(
        ts.tolist(),
        _r(cpu),
        _r(mem),
        avail.astype(np.int64).tolist(),
        _r(cpu_p, 3),
        _r(mem_p, 3),
        _r(io_p, 3),
        strict=True,
    ):
        out.append(
            {
                "type": "resource_sample",
                "ts": t,
                "interval_s": 300,
                "cpu_percent": c,
                "memory_percent": mm,
                "memory_available_mb": a,
                "cpu_pressure_s": cp,
                "memory_pressure_s": mp,
                "io_pressure_s": ip,
            }
        )
    hour_ts = [np.arange(b + _HOUR_S, d.off, _HOUR_S) for b, d in zip(boot_done, days, strict=True)]
    hts = np.concatenate(hour_ts) if hour_ts else np.zeros(0)
    h = len(hts)
    for key, name, version, weight in device.apps:
        fg = np.clip(rng.normal(weight, weight * 0.3, h), 0.0, 1.0) * _HOUR_S
        cpu_s = rng.gamma(2.0, 30.0 * weight * spec["busy"] * 2, h)
        rss = APPS[key]["rss_mb"] * rng.lognormal(0.0, 0.25, h)
        procs = rng.integers(1, 6 if key in ("chrome", "teams", "vscode") else 3, h)
        for t, f, c, r, p in zip(
            hts.tolist(), _r(fg, 1), _r(cpu_s), _r(rss, 1), procs.tolist(), strict=True
        ):
            out.append(
                {
                    "type": "app_resource",
                    "ts": t,
                    "app_name": name,
                    "app_version": _version_at(key, version, t, installed),
                    "interval_s": 3600,
                    "process_count": p,
                    "cpu_s": c,
                    "rss_mb": r,
                    "foreground_s": f,
                }
            )
    health_cpu = _r(rng.gamma(2.0, 0.15, h), 3)
    health_rss = _r(rng.normal(48.0, 3.0, h), 1)
    for t, c, r in zip(hts.tolist(), health_cpu, health_rss, strict=True):
        out.append(
            {
                "type": "agent_health",
                "ts": t,
                "interval_s": 3600,
                "cpu_percent": c,
                "rss_mb": r,
                "spool_events": 0,
                "spool_bytes": 0,
                "dropped_events_total": 0,
                "upload_failures_total": 0,
                "samplers": {
                    "resource_sample": {"runs": 12, "failures": 0, "last_duration_ms": 4.2},
                    "app_resource": {"runs": 12, "failures": 0, "last_duration_ms": 38.0},
                    "probe": {"runs": 2, "failures": 0, "last_duration_ms": 210.0},
                },
            }
        )
    probe_ts = [np.arange(b + 60.0, d.off, _PROBE_S) for b, d in zip(boot_done, days, strict=True)]
    pts = np.concatenate(probe_ts) if probe_ts else np.zeros(0)
    p = len(pts)
    for target in device.probes:
        dns = rng.lognormal(np.log(0.012), 0.5, p)
        tcp = rng.lognormal(np.log(0.025), 0.4, p)
        tls = rng.lognormal(np.log(0.045), 0.4, p)
        ttfb = rng.lognormal(np.log(0.18), 0.5, p)
        fail = rng.random(p) < 0.002
        total = dns + tcp + tls + ttfb + rng.exponential(0.05, p)
        for t, f, a, b2, c, d, tot in zip(
            pts.tolist(),
            fail.tolist(),
            _r(dns, 4),
            _r(tcp, 4),
            _r(tls, 4),
            _r(ttfb, 4),
            _r(total, 4),
            strict=True,
        ):
            if f:
                out.append(
                    {
                        "type": "probe",
                        "ts": t,
                        "target": target,
                        "ok": False,
                        "dns_s": a,
                        "total_s": 10.0,
                        "error": "timeout after 10 s",
                    }
                )
            else:
                out.append(
                    {
                        "type": "probe",
                        "ts": t,
                        "target": target,
                        "ok": True,
                        "dns_s": a,
                        "tcp_s": b2,
                        "tls_s": c,
                        "ttfb_s": d,
                        "total_s": tot,
                        "http_status": 200,
                    }
                )
    return out


def _incidents(
    rng: np.random.Generator,
    device: SimDevice,
    hwc: dict[str, Any],
    days: list[_Day],
    boot_done: npt.NDArray[np.float64],
    installs: dict[str, float],
) -> list[dict[str, Any]]:
    """The background noise of a healthy device: hangs, app crashes, system crashes."""
    out: list[dict[str, Any]] = []
    if not device.apps:
        return out
    weights = np.array([a[3] for a in device.apps])
    weights = weights / weights.sum()
    active_h = np.array(
        [max(0.0, d.off - b) / _HOUR_S for b, d in zip(boot_done, days, strict=True)]
    )
    for rate, kind in (
        (hwc["hangs_per_hour"], "app_hang"),
        (hwc["crashes_per_hour"], "app_crash"),
        (_SYSTEM_CRASHES_PER_HOUR, "system_crash"),
    ):
        counts = rng.poisson(rate * active_h)
        for j in np.flatnonzero(counts).tolist():
            for _ in range(int(counts[j])):
                t = float(rng.uniform(boot_done[j], days[j].off))
                if kind == "system_crash":
                    out.append(_system_crash(rng, device, t))
                    continue
                a = int(rng.choice(len(device.apps), p=weights))
                key, name, version, _w = device.apps[a]
                event: dict[str, Any] = {
                    "type": kind,
                    "ts": t,
                    "app_name": name,
                    "app_version": _version_at(key, version, t, installs),
                }
                if kind == "app_hang":
                    event["hang_duration_s"] = round(
                        float(min(600.0, rng.lognormal(np.log(8.0), 0.8))), 2
                    )
                    event["source"] = {
                        "windows": "Application Hang",
                        "macos": "DiagnosticReports",
                        "linux": "sampled:not_responding",
                    }[device.os]
                else:
                    modules = APPS[key]["modules"]
                    event["faulting_module"] = modules[int(rng.integers(len(modules)))]
                    event["exception_code"] = ("0xc0000005", "0xc0000409", "0x80000003")[
                        int(rng.choice(3, p=[0.7, 0.2, 0.1]))
                    ]
                    event["source"] = {
                        "windows": "Application Error",
                        "macos": "DiagnosticReports",
                        "linux": "systemd-coredump",
                    }[device.os]
                out.append(event)
    return out


def _system_crash(rng: np.random.Generator, device: SimDevice, t: float) -> dict[str, Any]:
    if device.os == "windows":
        return {
            "type": "system_crash",
            "ts": t,
            "crash_kind": "bugcheck",
            "bugcheck_code": ("0x0000007e", "0x000000d1", "0x00000133")[int(rng.integers(3))],
            "source": "Microsoft-Windows-WER-SystemErrorReporting",
        }
    return {
        "type": "system_crash",
        "ts": t,
        "crash_kind": "kernel_panic" if device.os == "macos" else "unexpected_shutdown",
        "source": "DiagnosticReports" if device.os == "macos" else "journald",
    }


def _software_changes(device: SimDevice, installs: dict[str, float]) -> list[dict[str, Any]]:
    """The updates of the portfolio's apps released during the period."""
    out = []
    for key, name, version, _w in device.apps:
        if key in installs:
            out.append(
                {
                    "type": "software_change",
                    "ts": installs[key],
                    "change": "update",
                    "name": name,
                    "version_from": version,
                    "version_to": APPS[key]["versions"][-1],
                    "source": {
                        "windows": "MsiInstaller",
                        "macos": "InstallHistory",
                        "linux": "dpkg",
                    }[device.os],
                }
            )
    return out


def _surveys(
    rng: np.random.Generator,
    config: SimConfig,
    device: SimDevice,
    days: list[_Day],
    events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Weekly pulse outcomes, answers following the week's experience (module docstring)."""
    out: list[dict[str, Any]] = []
    weeks = sorted({d.week for d in days})
    start = config.start_epoch
    hangs: dict[int, int] = {}
    crashes: dict[int, int] = {}
    sys_crashes: dict[int, int] = {}
    boots: dict[int, list[float]] = {}
    for e in events:
        week = int((e["ts"] - start) // (7 * 86400))
        if e["type"] == "app_hang":
            hangs[week] = hangs.get(week, 0) + 1
        elif e["type"] == "app_crash":
            crashes[week] = crashes.get(week, 0) + 1
        elif e["type"] == "system_crash":
            sys_crashes[week] = sys_crashes.get(week, 0) + 1
        elif e["type"] == "boot":
            boots.setdefault(week, []).append(e["boot_duration_s"])
    for week in weeks:
        draw = rng.random(4)
        noise = float(rng.normal(0.0, 0.8))
        prompt_id = _uuids(rng, 1)[0]
        if draw[0] >= config.pulse_response:
            continue
        candidates = [d for d in days if d.week == week]
        day = candidates[int(draw[1] * len(candidates))]
        t = day.on + float(draw[2]) * max(60.0, day.off - day.on)
        boot_med = float(np.median(boots[week])) if boots.get(week) else 0.0
        experience = (
            1.0
            - 0.08 * hangs.get(week, 0)
            - 0.25 * crashes.get(week, 0)
            - 0.6 * sys_crashes.get(week, 0)
            - max(0.0, (boot_med - 40.0) / 100.0)
        )
        experience = min(1.0, max(0.0, experience))
        outcome = "answered" if draw[3] < 0.8 else ("dismissed" if draw[3] < 0.92 else "expired")
        event: dict[str, Any] = {
            "type": "survey_response",
            "ts": t,
            "campaign_id": "sim-pulse",
            "prompt_id": prompt_id,
            "outcome": outcome,
            "question_type": "stars",
            "trigger": "pulse",
            "user_hash": device.user_hash,
        }
        if outcome == "answered":
            value = round(1.5 + 3.5 * experience + device.satisfaction_bias + noise)
            event["value"] = float(min(5, max(1, value)))
            event["latency_s"] = round(float(rng.lognormal(np.log(6.0), 0.6)), 2)
        elif outcome == "dismissed":
            event["latency_s"] = round(float(rng.lognormal(np.log(3.0), 0.6)), 2)
        out.append(event)
    return out


def _finalise(rng: np.random.Generator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give ids and ISO times (in the sorted order), in place: JSON-ready wire events."""
    if not events:
        return []
    ids = _uuids(rng, len(events))
    times = _iso(np.array([e["ts"] for e in events]))
    boots = [i for i, e in enumerate(events) if "booted_at" in e]
    booted = _iso(np.array([events[i]["booted_at"] for i in boots])) if boots else []
    for event_id, ts, event in zip(ids, times, events, strict=True):
        event["ts"] = ts
        event["event_id"] = event_id
    for i, b in zip(boots, booted, strict=True):
        events[i]["booted_at"] = b
    return events


def _batches(
    config: SimConfig,
    device: SimDevice,
    events: list[dict[str, Any]],
    ts: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    size = config.batch_events
    out = []
    for i in range(0, len(events), size):
        chunk = events[i : i + size]
        last = float(ts[i + len(chunk) - 1])
        sent = min(config.end_epoch, last + 1.0 + (_hash_fraction(chunk[-1]["event_id"]) * 59.0))
        out.append(
            {
                "batch_id": str(
                    uuid.uuid5(
                        _NS,
                        f"batch/{device.device_id}/{chunk[0]['event_id']}/"
                        f"{chunk[-1]['event_id']}/{len(chunk)}",
                    )
                ),
                "device_id": device.device_id,
                "agent_version": config.agent_version,
                "schema_version": SCHEMA_VERSION,
                "sent_at": _iso(np.array([sent]))[0],
                "events": chunk,
            }
        )
    return out


def _hash_fraction(text: str) -> float:
    """A stable number in [0, 1) from a UUID string (its first 8 hex digits)."""
    return int(text[:8], 16) / 2**32


def simulate_fleet(config: SimConfig, injectors: Sequence[Injector] = ()) -> Iterator[DeviceOutput]:
    """Simulate every device in turn (one at a time: a big fleet need not fit in memory)."""
    sites = make_sites(config)
    releases = fleet_releases(config)
    for device in make_devices(config):
        yield simulate_device(config, device, sites, releases, injectors)


_RS_KEYS: Final = (
    "type",
    "ts",
    "interval_s",
    "cpu_percent",
    "memory_percent",
    "memory_available_mb",
    "cpu_pressure_s",
    "memory_pressure_s",
    "io_pressure_s",
    "event_id",
)
_RS_TEMPLATE: Final = (
    '{"type":"resource_sample","ts":"%s","interval_s":%s,"cpu_percent":%s,'
    '"memory_percent":%s,"memory_available_mb":%s,"cpu_pressure_s":%s,'
    '"memory_pressure_s":%s,"io_pressure_s":%s,"event_id":"%s"}'
)
_RS_DISK_KEYS: Final = (*_RS_KEYS[:-1], "disk_percent", "event_id")
_RS_DISK_TEMPLATE: Final = _RS_TEMPLATE[:-17] + ',"disk_percent":%s,"event_id":"%s"}'
_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _event_json(event: dict[str, Any]) -> str:
    if event["type"] == "resource_sample" and tuple(event) == _RS_KEYS:
        # %s of a Python (or numpy) number is its JSON text, as json.dumps writes it
        return _RS_TEMPLATE % tuple(event.values())[1:]
    if event["type"] == "resource_sample" and tuple(event) == _RS_DISK_KEYS:
        return _RS_DISK_TEMPLATE % tuple(event.values())[1:]
    return _ENCODE(event)


def batch_json(batch: dict[str, Any]) -> str:
    """Compact JSON text of a batch: the same text as ``json.dumps(batch,
    separators=(",", ":"))``, about twice as fast for the bulk of the events."""
    head = _ENCODE({k: v for k, v in batch.items() if k != "events"})
    return head[:-1] + ',"events":[' + ",".join(map(_event_json, batch["events"])) + "]}"


def ticket_outcomes(tickets: Sequence[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """Each ticket with a simulated service-desk outcome: ``resolved_at`` and
    ``first_contact_resolution`` (``true``/``false``).

    A background ticket is resolved at first contact with probability 0.65 (within 6-30
    minutes), otherwise after a log-normal time with a median of 2.5 h (sigma 0.9); a
    ticket of an injected incident is fixed at first contact with probability 0.3,
    otherwise after a median of 6 h. So the desk meets an "80-90 % within 8 h" SLA while an
    incident hurts users: the watermelon the XLA report shows. Drawn from its own stream
    (``seed``), so adding outcomes changes nothing else of the simulation.
    """
    rng = np.random.default_rng([seed, 0x71C4E7])
    n = len(tickets)
    incident = np.array([bool(t.get("incident_id")) for t in tickets], dtype=np.bool_)
    fcr = rng.random(n) < np.where(incident, 0.3, 0.65)
    slow = rng.lognormal(np.log(np.where(incident, 6.0, 2.5)), 0.9)
    hours = np.where(fcr, rng.uniform(0.1, 0.5, n), slow)
    opened = np.array([_parse_iso(t["opened_at"]) for t in tickets], dtype=np.float64)
    resolved = _iso(opened + hours * 3600.0)
    return [
        {**t, "resolved_at": r, "first_contact_resolution": "true" if f else "false"}
        for t, r, f in zip(tickets, resolved, fcr.tolist(), strict=True)
    ]
