"""Injected incidents for the fleet simulator, with their ground truth and their tickets.

Pure generation (numpy, no I/O). Each incident kind is an :class:`scoring.simulate.Injector`:
``apply`` changes the events of the devices in its scope, from the device's own onset on
(nothing before it), and remembers which devices it hit; ``incidents`` reports the ground
truth seen so far (one entry); ``tickets_for`` hands over the tickets the device's user
raised. When devices are simulated in several processes, each process's injectors see only
their devices: :func:`merge_incidents` combines their entries into ``incidents.json``.

Kinds (:data:`KINDS`):

- ``boot_patch`` (:class:`BootPatch`): an OS patch (``software_change`` ``os_patch`` with a
  KB number) rolled out over 1-3 days to the Windows devices of one OS version; it installs
  while the device shuts down, and every boot from then on takes 40-120 % longer.
- ``app_version_crash`` (:class:`AppVersionCrash`): a new build of one Windows app, staged
  over 2-6 days (each device updates at its first boot after its slot: ``software_change``
  ``update``); that build crashes 5-15 times as often as the app did (``app_crash`` with the
  new ``app_version``, one faulting module and exception code).
- ``memory_leak_hangs`` (:class:`MemoryLeakHangs`): a new build that leaks memory: after the
  update the app's RSS and the device's memory use grow through each working day (reset at
  the next boot), memory pressure rises, and the app hangs more and longer as the day goes on
  (extra ``app_hang`` at a rate growing with the square of the hours since boot).
- ``saas_slow_site`` (:class:`SaasSlowSite`): a business web app (a ``probe`` target) turns
  3-8 times slower (TTFB, some TLS) with 3-12 % failures for the devices of one site, from
  an onset (a weekday morning, local time) for 2-6 days. No software change is behind it:
  ``change`` is null and ``cause`` is ``network``.
- ``driver_system_crash`` (:class:`DriverSystemCrash`): a driver update (``software_change``
  ``driver``) on the Windows devices of one hardware class, after which they blue-screen
  (``system_crash`` ``bugcheck`` with one code and the faulting driver in ``detail``, followed
  by a cold boot) at 0.005-0.02 per active hour (the fleet's base: 0.0003).
- ``disk_filling`` (:class:`DiskFilling`): one device's disk fills over 5-12 days
  (``disk_percent`` rising to 97-99.5 %); past 80 % the I/O pressure, boot and sign-in times
  rise with it. No change behind it. :class:`DiskUsage` (no incident) makes every device
  report a steady ``disk_percent``, so the field alone gives nothing away.

Ground truth (an entry of ``incidents.json``): ``id``, ``kind``, ``title``, ``scope``,
``scope_key``, ``metric``, ``onset`` (ISO 8601 UTC: the earliest ``since`` of the affected
devices), ``end`` (null while it lasts past the period), ``affected_devices`` (``hostname``,
``device_id``, ``since``: when this device's experience starts to degrade: the install of the
change for an app or a driver, the first slowed boot after a patch, the first slowed probe,
the start of the fill), ``change`` (the ``software_change`` a detector should name, or null),
``cause``, ``effect`` (the size of the degradation) and ``tickets`` (how many were raised).

Tickets: a share of the affected users (:data:`TICKET_SHARE`) raise one ticket, once they have
met the failure :data:`TICKET_AFTER_HITS` times (a second slow boot or crash, a third hang or
slow page...), after a log-normal delay counted in their working time (sessions from boot to
the last resource sample), median :data:`TICKET_DELAY_H` working hours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

import numpy as np

from scoring.simulate import (
    APPS,
    HARDWARE_CLASSES,
    SITES,
    Injector,
    SimConfig,
    SimDevice,
    _iso,
    make_devices,
)

__all__ = [
    "KINDS",
    "TICKET_AFTER_HITS",
    "TICKET_DELAY_H",
    "TICKET_SHARE",
    "AppVersionCrash",
    "BootPatch",
    "DiskFilling",
    "DiskUsage",
    "DriverSystemCrash",
    "MemoryLeakHangs",
    "SaasSlowSite",
    "auto_incident_count",
    "default_incidents",
    "merge_incidents",
]

KINDS: Final = (
    "boot_patch",
    "app_version_crash",
    "memory_leak_hangs",
    "saas_slow_site",
    "driver_system_crash",
    "disk_filling",
)
"""The incident kinds, in the planner's rotation order."""

TICKET_SHARE: Final[dict[str, float]] = {
    "boot_patch": 0.06,
    "app_version_crash": 0.15,
    "memory_leak_hangs": 0.10,
    "saas_slow_site": 0.12,
    "driver_system_crash": 0.20,
    "disk_filling": 0.30,
}
"""Share of the affected users who met the failure and raise a ticket, by kind."""

TICKET_DELAY_H: Final[dict[str, float]] = {
    "boot_patch": 3.0,
    "app_version_crash": 2.0,
    "memory_leak_hangs": 2.0,
    "saas_slow_site": 2.0,
    "driver_system_crash": 1.0,
    "disk_filling": 6.0,
}
"""Median delay (working hours) from the hit that decides a user to their ticket, by kind."""

TICKET_AFTER_HITS: Final[dict[str, int]] = {
    "boot_patch": 2,
    "app_version_crash": 2,
    "memory_leak_hangs": 3,
    "saas_slow_site": 3,
    "driver_system_crash": 2,
    "disk_filling": 1,
}
"""A user raises a ticket only after meeting the failure this many times (a second slow
boot, a second crash or blue screen, a third hang or slow page; the disk passing 92 %)."""

_DELAY_SIGMA: Final = 0.8
_HOUR: Final = 3600.0
_DAY: Final = 86400.0
_WINDOWS_RELEASE: Final = {"10.0.22631": "11 Version 23H2", "10.0.26100": "11 Version 24H2"}
_DRIVERS: Final = (
    ("Intel(R) Iris(R) Xe Graphics", "igdkmd64.sys", "31.0.101.5590", "Intel Corporation"),
    ("Realtek High Definition Audio", "RTKVHD64.sys", "6.0.9600.1", "Realtek Semiconductor"),
    ("Intel(R) Wi-Fi 6E AX211 160MHz", "Netwtw10.sys", "23.60.0.10", "Intel Corporation"),
    ("Contoso Dock USB-C Display", "cdockdisp.sys", "11.4.2.0", "Contoso Ltd"),
)
_BUGCHECKS: Final = ("0x000000d1", "0x00000116", "0x0000009f", "0x0000007e")


def _ts_iso(t: float) -> str:
    return _iso(np.array([t]))[0]


def _sessions(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The device's working sessions: from each boot to the last resource sample before the
    next boot (at least ten minutes)."""
    boots = np.sort(np.array([e["ts"] for e in events if e["type"] == "boot"], dtype=float))
    if not len(boots):
        return []
    samples = np.sort(
        np.array([e["ts"] for e in events if e["type"] == "resource_sample"], dtype=float)
    )
    out = []
    nxt = np.append(boots[1:], np.inf)
    for b, n in zip(boots.tolist(), nxt.tolist(), strict=True):
        lo, hi = np.searchsorted(samples, [b, n])
        last = float(samples[hi - 1]) if hi > lo else b
        out.append((b, max(last, b + 600.0)))
    return out


def _poisson_times(
    rng: np.random.Generator,
    sessions: list[tuple[float, float]],
    since: float,
    rate_per_h: float,
) -> list[float]:
    """Arrival times of a Poisson process of ``rate_per_h`` during the sessions after
    ``since``."""
    out: list[float] = []
    for s, e in sessions:
        lo = max(s, since)
        if e <= lo:
            continue
        n = int(rng.poisson(rate_per_h * (e - lo) / _HOUR))
        out.extend(sorted(rng.uniform(lo, e, n).tolist()))
    return out


def _after_working_time(
    sessions: list[tuple[float, float]], t: float, delay_s: float
) -> float | None:
    """The time ``delay_s`` of working time after ``t`` (None: past the last session)."""
    left = delay_s
    for s, e in sessions:
        if e <= t:
            continue
        pos = max(s, t)
        if e - pos >= left:
            return pos + left
        left -= e - pos
    return None


def _first_boot_after(events: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    boots = [e for e in events if e["type"] == "boot" and e.get("booted_at", e["ts"]) >= t]
    return min(boots, key=lambda e: e["ts"]) if boots else None


def _bump(version: str, by: int) -> str:
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + by}" if last.isdigit() else f"{version}.{by}"


@dataclass(kw_only=True)
class _Incident:
    """What every incident kind shares: identity, per-device bookkeeping, tickets."""

    kind: ClassVar[str] = ""
    metric: ClassVar[str] = ""
    id: str
    number: int
    start: float
    """Planned start (POSIX s): the rollout's first slot, or the onset."""
    _seen: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    _tickets: dict[str, list[dict[str, str]]] = field(default_factory=dict, init=False, repr=False)
    _ticket_count: int = field(default=0, init=False, repr=False)

    # -- the Injector protocol ------------------------------------------------------------

    def apply(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> list[dict[str, Any]]:
        """The device's events with the incident applied (unchanged out of scope)."""
        if not self.targets(device) or not events:
            return events
        drng = np.random.default_rng(
            [config.seed, 61, self.number, device.index, int(config.end_epoch), config.days]
        )
        result = self._inject(device, events, drng, config)
        if result is None:
            return events
        new_events, since, hits = result
        hits = sorted(hits)
        need = TICKET_AFTER_HITS[self.kind]
        first_hit = hits[need - 1] if len(hits) >= need else None
        if since >= config.end_epoch:
            return events
        self._seen[device.device_id] = {
            "hostname": device.hostname,
            "device_id": device.device_id,
            "since": _ts_iso(since),
        }
        draw = float(drng.random())
        delay = float(drng.lognormal(math.log(TICKET_DELAY_H[self.kind] * _HOUR), _DELAY_SIGMA))
        if first_hit is not None and draw < TICKET_SHARE[self.kind]:
            at = _after_working_time(_sessions(new_events), first_hit, delay)
            if at is not None and at < config.end_epoch:
                category, summary = self._ticket_text()
                self._tickets[device.device_id] = [
                    {
                        "external_id": "",
                        "opened_at": _ts_iso(at),
                        "device_hostname": device.hostname,
                        "user": device.user,
                        "category": category,
                        "summary": summary,
                        "incident_id": self.id,
                    }
                ]
                self._ticket_count += 1
        return new_events

    def incidents(self) -> list[dict[str, Any]]:
        """This incident's ground truth, with the affected devices seen so far."""
        affected = sorted(self._seen.values(), key=lambda d: d["hostname"])
        return [
            {
                "id": self.id,
                "kind": self.kind,
                "title": self.title(),
                **self._scope(),
                "metric": self.metric,
                "onset": min((d["since"] for d in affected), default=None),
                "end": self._end(),
                "affected_devices": affected,
                "change": self._change(),
                "cause": self._cause(),
                "effect": self._effect(),
                "tickets": self._ticket_count,
            }
        ]

    def tickets_for(self, device: SimDevice) -> list[dict[str, str]]:
        """The tickets the device's user raised about this incident (handed over once)."""
        return self._tickets.pop(device.device_id, [])

    # -- what each kind defines -----------------------------------------------------------

    def targets(self, device: SimDevice) -> bool:
        """Whether the device is in the incident's scope."""
        raise NotImplementedError

    def title(self) -> str:
        """A one-line description."""
        raise NotImplementedError

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        """(new events, since, times the user met the failure) or None if not hit."""
        raise NotImplementedError

    def _scope(self) -> dict[str, Any]:
        raise NotImplementedError

    def _change(self) -> dict[str, Any] | None:
        return None

    def _cause(self) -> str:
        return "software_change"

    def _end(self) -> str | None:
        return None

    def _effect(self) -> dict[str, Any]:
        raise NotImplementedError

    def _ticket_text(self) -> tuple[str, str]:
        raise NotImplementedError


@dataclass(kw_only=True)
class _AppBuild(_Incident):
    """A new build of one Windows app, staged over ``rollout_days`` from ``start``."""

    app: str
    """Catalogue key (:data:`scoring.simulate.APPS`)."""
    version_to: str
    rollout_days: float

    @property
    def app_name(self) -> str:
        """The app's name on Windows."""
        return str(APPS[self.app]["names"]["windows"])

    def targets(self, device: SimDevice) -> bool:
        """Windows devices running the app."""
        return device.os == "windows" and any(a[0] == self.app for a in device.apps)

    def _scope(self) -> dict[str, Any]:
        return {
            "scope": "app_version",
            "scope_key": f"{self.app_name} {self.version_to}",
            "app_name": self.app_name,
            "app_version": self.version_to,
        }

    def _change(self) -> dict[str, Any] | None:
        return {
            "type": "software_change",
            "change": "update",
            "name": self.app_name,
            "version_to": self.version_to,
        }

    def _install(
        self, device: SimDevice, events: list[dict[str, Any]], rng: np.random.Generator
    ) -> tuple[list[dict[str, Any]], float] | None:
        """Update the device at its first boot after its slot: the change event, the new
        version on the app's events from then on (a fleet update after it is superseded)."""
        slot = self.start + float(rng.uniform(0.0, self.rollout_days)) * _DAY
        boot = _first_boot_after(events, slot)
        if boot is None:
            return None
        at = float(boot["ts"]) + float(rng.uniform(120.0, 900.0))
        name = self.app_name
        version_from = next(a[2] for a in device.apps if a[0] == self.app)
        last = -math.inf
        out = []
        for e in events:
            if e.get("app_name") == name and "app_version" in e:
                if e["ts"] >= at:
                    e["app_version"] = self.version_to
                elif e["ts"] > last:
                    last, version_from = e["ts"], e["app_version"]
            if e["type"] == "software_change" and e.get("name") == name:
                if e["ts"] >= at:
                    continue
                if e["ts"] > last:
                    last, version_from = e["ts"], e["version_to"]
            out.append(e)
        out.append(
            {
                "type": "software_change",
                "ts": at,
                "change": "update",
                "name": name,
                "version_from": version_from,
                "version_to": self.version_to,
                "source": "MsiInstaller",
            }
        )
        return out, at

    def _weight(self, device: SimDevice) -> float:
        return next(a[3] for a in device.apps if a[0] == self.app)


@dataclass(kw_only=True)
class AppVersionCrash(_AppBuild):
    """A new app build that crashes ``multiplier`` times as often as the app did."""

    kind: ClassVar[str] = "app_version_crash"
    metric: ClassVar[str] = "app_crash_rate"
    multiplier: float
    faulting_module: str
    exception_code: str = "0xc0000005"

    def title(self) -> str:
        """A one-line description."""
        return f"{self.app_name} {self.version_to} crashes {self.multiplier:.1f}x as often"

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        installed = self._install(device, events, rng)
        if installed is None:
            return None
        out, at = installed
        base = HARDWARE_CLASSES[device.hardware_class]["crashes_per_hour"] * self._weight(device)
        times = _poisson_times(rng, _sessions(out), at, base * (self.multiplier - 1.0))
        for t in times:
            out.append(
                {
                    "type": "app_crash",
                    "ts": t,
                    "app_name": self.app_name,
                    "app_version": self.version_to,
                    "faulting_module": self.faulting_module,
                    "exception_code": self.exception_code,
                    "source": "Application Error",
                }
            )
        return out, at, times

    def _effect(self) -> dict[str, Any]:
        return {
            "crash_rate_factor": round(self.multiplier, 2),
            "faulting_module": self.faulting_module,
            "exception_code": self.exception_code,
            "rollout_days": round(self.rollout_days, 2),
        }

    def _ticket_text(self) -> tuple[str, str]:
        return ("application", f"{self.app_name} keeps crashing since this week")


@dataclass(kw_only=True)
class MemoryLeakHangs(_AppBuild):
    """A new app build that leaks memory: hangs grow through each working day."""

    kind: ClassVar[str] = "memory_leak_hangs"
    metric: ClassVar[str] = "app_hang_rate"
    peak_multiplier: float
    """Hang rate of the app after 8 hours of uptime, relative to its normal rate."""
    leak_mb_per_h: float

    def title(self) -> str:
        """A one-line description."""
        return f"{self.app_name} {self.version_to} leaks memory and hangs through the day"

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        installed = self._install(device, events, rng)
        if installed is None:
            return None
        out, at = installed
        sessions = _sessions(out)
        starts = np.array([s for s, _e in sessions])
        hwc = HARDWARE_CLASSES[device.hardware_class]
        mem_total = float(hwc["memory_mb"])

        def uptime_h(t: float) -> float:
            i = int(np.searchsorted(starts, t, side="right")) - 1
            return max(0.0, t - float(starts[i])) / _HOUR if i >= 0 else 0.0

        for e in out:
            if e["ts"] < at:
                continue
            if e["type"] == "resource_sample":
                leaked = self.leak_mb_per_h * uptime_h(e["ts"])
                mem = min(99.0, e["memory_percent"] + 100.0 * leaked / mem_total)
                e["memory_percent"] = round(mem, 2)
                e["memory_available_mb"] = int(max(0.0, mem_total * (1.0 - mem / 100.0)))
                if mem > 80.0:
                    extra = float(rng.exponential(0.5 * (mem - 80.0) / 5.0))
                    e["memory_pressure_s"] = round(e["memory_pressure_s"] + extra, 3)
            elif e["type"] == "app_resource" and e["app_name"] == self.app_name:
                e["rss_mb"] = round(e["rss_mb"] + self.leak_mb_per_h * uptime_h(e["ts"]), 1)
        base = hwc["hangs_per_hour"] * self._weight(device)
        peak = base * (self.peak_multiplier - 1.0)
        hangs: list[float] = []
        for s0, s1 in sessions:
            lo = max(s0, at)
            if s1 <= lo:
                continue
            top = peak * ((s1 - s0) / (8.0 * _HOUR)) ** 2  # the rate at the end of the session
            n = int(rng.poisson(top * (s1 - lo) / _HOUR))
            for t in sorted(rng.uniform(lo, s1, n).tolist()):
                if rng.random() < ((t - s0) / (s1 - s0)) ** 2:  # thinning: rate ~ uptime squared
                    hangs.append(t)
        for t in hangs:
            up = (t - float(starts[np.searchsorted(starts, t, side="right") - 1])) / _HOUR
            duration = float(min(600.0, rng.lognormal(math.log(8.0 * (1.0 + up / 3.0)), 0.7)))
            out.append(
                {
                    "type": "app_hang",
                    "ts": t,
                    "app_name": self.app_name,
                    "app_version": self.version_to,
                    "hang_duration_s": round(duration, 2),
                    "source": "Application Hang",
                }
            )
        return out, at, hangs

    def _effect(self) -> dict[str, Any]:
        return {
            "hang_rate_factor_at_8h_uptime": round(self.peak_multiplier, 2),
            "leak_mb_per_hour": round(self.leak_mb_per_h, 1),
            "rollout_days": round(self.rollout_days, 2),
        }

    def _ticket_text(self) -> tuple[str, str]:
        return ("application", f"{self.app_name} freezes more and more as the day goes on")


@dataclass(kw_only=True)
class BootPatch(_Incident):
    """An OS patch for one Windows version after which boots take longer."""

    kind: ClassVar[str] = "boot_patch"
    metric: ClassVar[str] = "boot"
    os_version: str
    kb: str
    build_from: str
    build_to: str
    rollout_days: float
    slowdown: float
    """Boot durations are multiplied by ``1 + slowdown`` (0.4-1.2; ±15 % per device)."""

    @property
    def patch_name(self) -> str:
        """The update's title as Windows Update shows it."""
        release = _WINDOWS_RELEASE.get(self.os_version, "10 Version 22H2")
        month = datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m")
        return f"{month} Cumulative Update for Windows {release} ({self.kb})"

    def targets(self, device: SimDevice) -> bool:
        """Windows devices of the OS version."""
        return device.os == "windows" and device.os_version == self.os_version

    def title(self) -> str:
        """A one-line description."""
        return f"{self.kb} slows boots of Windows {self.os_version} by {self.slowdown:.0%}"

    def _scope(self) -> dict[str, Any]:
        return {"scope": "os_version", "scope_key": self.os_version}

    def _change(self) -> dict[str, Any] | None:
        return {
            "type": "software_change",
            "change": "os_patch",
            "name": self.patch_name,
            "kb": self.kb,
            "version_to": self.build_to,
        }

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        slot = self.start + float(rng.uniform(0.0, self.rollout_days)) * _DAY
        first = _first_boot_after(events, slot)
        if first is None:
            return None
        factor = 1.0 + self.slowdown * float(rng.lognormal(0.0, 0.15))
        boots = sorted(
            (e for e in events if e["type"] == "boot" and e["ts"] >= first["ts"]),
            key=lambda e: e["ts"],
        )
        for boot in boots:
            duration = round(boot["boot_duration_s"] * factor, 2)
            boot["boot_duration_s"] = duration
            boot["booted_at"] = boot["ts"] - duration
            if "main_path_s" in boot:
                boot["main_path_s"] = round(duration * 0.7, 2)
                boot["post_boot_s"] = round(duration * 0.3, 2)
        installed = first["booted_at"] - float(rng.uniform(60.0, 600.0))
        change = {
            "type": "software_change",
            "ts": installed,
            "change": "os_patch",
            "name": self.patch_name,
            "version_from": self.build_from,
            "version_to": self.build_to,
            "kb": self.kb,
            "publisher": "Microsoft Corporation",
            "source": "WindowsUpdateClient",
        }
        return [*events, change], float(first["ts"]), [float(b["ts"]) for b in boots]

    def _effect(self) -> dict[str, Any]:
        return {
            "boot_duration_factor": round(1.0 + self.slowdown, 3),
            "rollout_days": round(self.rollout_days, 2),
        }

    def _ticket_text(self) -> tuple[str, str]:
        return ("performance", "Laptop takes ages to start since the last Windows update")


@dataclass(kw_only=True)
class DriverSystemCrash(_Incident):
    """A driver update on one hardware class after which the devices blue-screen."""

    kind: ClassVar[str] = "driver_system_crash"
    metric: ClassVar[str] = "system_crash_rate"
    hardware_class: str
    driver: str
    driver_file: str
    version_from: str
    version_to: str
    publisher: str
    bugcheck_code: str
    rate_per_h: float
    rollout_days: float

    def targets(self, device: SimDevice) -> bool:
        """Windows devices of the hardware class."""
        return device.os == "windows" and device.hardware_class == self.hardware_class

    def title(self) -> str:
        """A one-line description."""
        model = HARDWARE_CLASSES[self.hardware_class]["model"]
        return f"{self.driver} {self.version_to} crashes {model} devices ({self.bugcheck_code})"

    def _scope(self) -> dict[str, Any]:
        return {
            "scope": "hardware_class",
            "scope_key": self.hardware_class,
            "model": HARDWARE_CLASSES[self.hardware_class]["model"],
        }

    def _change(self) -> dict[str, Any] | None:
        return {
            "type": "software_change",
            "change": "driver",
            "name": self.driver,
            "version_to": self.version_to,
        }

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        slot = self.start + float(rng.uniform(0.0, self.rollout_days)) * _DAY
        boot = _first_boot_after(events, slot)
        if boot is None:
            return None
        at = float(boot["ts"]) + float(rng.uniform(120.0, 900.0))
        out = [
            *events,
            {
                "type": "software_change",
                "ts": at,
                "change": "driver",
                "name": self.driver,
                "version_from": self.version_from,
                "version_to": self.version_to,
                "publisher": self.publisher,
                "source": "WindowsUpdateClient",
            },
        ]
        hwc = HARDWARE_CLASSES[device.hardware_class]
        times = _poisson_times(rng, _sessions(events), at, self.rate_per_h)
        for t in times:
            out.append(
                {
                    "type": "system_crash",
                    "ts": t,
                    "crash_kind": "bugcheck",
                    "bugcheck_code": self.bugcheck_code,
                    "detail": f"faulting driver {self.driver_file}",
                    "source": "Microsoft-Windows-WER-SystemErrorReporting",
                }
            )
            booted = t + float(rng.uniform(5.0, 30.0))
            duration = round(float(rng.lognormal(math.log(hwc["boot_median_s"]), 0.35)), 2)
            out.append(
                {
                    "type": "boot",
                    "ts": booted + duration,
                    "booted_at": booted,
                    "boot_duration_s": duration,
                    "boot_kind": "cold",
                    "main_path_s": round(duration * 0.7, 2),
                    "post_boot_s": round(duration * 0.3, 2),
                    "source": "Microsoft-Windows-Diagnostics-Performance",
                }
            )
        return out, at, times

    def _effect(self) -> dict[str, Any]:
        return {
            "system_crashes_per_active_hour": round(self.rate_per_h, 4),
            "bugcheck_code": self.bugcheck_code,
            "faulting_driver": self.driver_file,
            "rollout_days": round(self.rollout_days, 2),
        }

    def _ticket_text(self) -> tuple[str, str]:
        return ("hardware", "Blue screen several times since yesterday")


@dataclass(kw_only=True)
class SaasSlowSite(_Incident):
    """A business web app slow (and failing now and then) for one site, no change behind."""

    kind: ClassVar[str] = "saas_slow_site"
    metric: ClassVar[str] = "probe_latency"
    site: str
    target: str
    until: float
    """End of the incident (POSIX s, exclusive)."""
    slowdown: float
    """Time to first byte multiplied by this (3-8)."""
    failure_rate: float

    def targets(self, device: SimDevice) -> bool:
        """Devices of the site that probe the target."""
        return device.site == self.site and self.target in device.probes

    def title(self) -> str:
        """A one-line description."""
        return f"{self.target} slow from {self.site}"

    def _scope(self) -> dict[str, Any]:
        return {"scope": "site", "scope_key": self.site, "target": self.target}

    def _cause(self) -> str:
        return "network"

    def _end(self) -> str | None:
        return _ts_iso(self.until)

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        first: float | None = None
        hits: list[float] = []
        out = []
        for e in events:
            if (
                e["type"] == "probe"
                and e["target"] == self.target
                and (self.start <= e["ts"] < self.until)
            ):
                first = e["ts"] if first is None else min(first, e["ts"])
                hits.append(e["ts"])
                if rng.random() < self.failure_rate:
                    e = {
                        "type": "probe",
                        "ts": e["ts"],
                        "target": self.target,
                        "ok": False,
                        "dns_s": e["dns_s"],
                        "total_s": 10.0,
                        "error": "timeout after 10 s",
                    }
                elif e["ok"]:
                    rest = e["total_s"] - e["dns_s"] - e["tcp_s"] - e["tls_s"] - e["ttfb_s"]
                    e["tls_s"] = round(e["tls_s"] * (1.0 + 0.3 * (self.slowdown - 1.0)), 4)
                    ttfb = e["ttfb_s"] * self.slowdown * float(rng.lognormal(0.0, 0.3))
                    e["ttfb_s"] = round(ttfb, 4)
                    total = e["dns_s"] + e["tcp_s"] + e["tls_s"] + e["ttfb_s"] + max(0.0, rest)
                    e["total_s"] = round(min(10.0, total), 4)
            out.append(e)
        if first is None:
            return None
        return out, first, hits

    def _effect(self) -> dict[str, Any]:
        return {
            "ttfb_factor": round(self.slowdown, 2),
            "failure_rate": round(self.failure_rate, 3),
        }

    def _ticket_text(self) -> tuple[str, str]:
        name = self.target.split(".")[0].upper()
        return ("network", f"{name} is very slow this morning, pages take forever")


@dataclass(kw_only=True)
class DiskFilling(_Incident):
    """One device's disk fills up day by day; past 80 % I/O, boots and sign-ins slow down."""

    kind: ClassVar[str] = "disk_filling"
    metric: ClassVar[str] = "io_pressure"
    device_index: int
    hostname: str
    fill_days: float
    full_percent: float

    def targets(self, device: SimDevice) -> bool:
        """The one device."""
        return device.index == self.device_index

    def title(self) -> str:
        """A one-line description."""
        return f"disk of {self.hostname} filling up"

    def _scope(self) -> dict[str, Any]:
        return {"scope": "device", "scope_key": self.hostname}

    def _cause(self) -> str:
        return "disk_full"

    def _disk(self, t: float, before: float) -> float:
        fill = min(1.0, max(0.0, (t - self.start) / (self.fill_days * _DAY)))
        return before + (self.full_percent - before) * fill

    @staticmethod
    def _severity(disk: float) -> float:
        return min(1.0, max(0.0, (disk - 80.0) / 20.0)) ** 2

    def _inject(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> tuple[list[dict[str, Any]], float, list[float]] | None:
        before = _steady_disk(config, device)
        hit: float | None = None
        touched = False
        for e in sorted(events, key=lambda e: e["ts"]):
            if e["ts"] < self.start:
                continue
            disk = self._disk(e["ts"], e.get("disk_percent", before))
            sev = self._severity(disk)
            if e["type"] == "resource_sample":
                touched = True
                e["disk_percent"] = round(disk, 1)
                e["io_pressure_s"] = round(
                    e["io_pressure_s"] + sev * float(rng.exponential(6.0)), 3
                )
                if disk >= 92.0 and hit is None:
                    hit = e["ts"]
            elif e["type"] == "boot" and e["booted_at"] >= self.start:
                duration = round(e["boot_duration_s"] * (1.0 + 0.9 * sev), 2)
                e["boot_duration_s"] = duration
                e["booted_at"] = e["ts"] - duration
                if "main_path_s" in e:
                    e["main_path_s"] = round(duration * 0.7, 2)
                    e["post_boot_s"] = round(duration * 0.3, 2)
            elif e["type"] == "logon":
                factor = 1.0 + 0.8 * sev
                e["logon_duration_s"] = round(min(600.0, e["logon_duration_s"] * factor), 2)
                if "desktop_ready_s" in e:
                    e["desktop_ready_s"] = round(e["logon_duration_s"] * 0.8, 2)
        if not touched:
            return None
        return events, self.start, [] if hit is None else [hit]

    def _effect(self) -> dict[str, Any]:
        return {
            "fill_days": round(self.fill_days, 1),
            "disk_percent_at_full": round(self.full_percent, 1),
            "io_pressure_from_disk_percent": 80.0,
        }

    def _ticket_text(self) -> tuple[str, str]:
        return ("performance", "Computer gets slower every day, says the disk is almost full")


def _steady_disk(config: SimConfig, device: SimDevice) -> float:
    """The device's usual disk use (percent)."""
    rng = np.random.default_rng([config.seed, 62, device.index])
    return float(rng.uniform(30.0, 72.0))


@dataclass(kw_only=True)
class DiskUsage:
    """Not an incident: every device reports a steady ``disk_percent`` in its resource
    samples (its usual level, a slow drift, a little noise), so that a disk that fills is a
    change a detector must see, not a field that appears."""

    def apply(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> list[dict[str, Any]]:
        """The events with ``disk_percent`` on every resource sample."""
        base = _steady_disk(config, device)
        drng = np.random.default_rng([config.seed, 63, device.index, int(config.end_epoch)])
        samples = [e for e in events if e["type"] == "resource_sample"]
        if not samples:
            return events
        ts = np.array([e["ts"] for e in samples])
        drift = float(drng.normal(0.05, 0.05))  # percent per day
        values = base + drift * (ts - config.start_epoch) / _DAY
        values = values + drng.normal(0.0, 0.15, len(ts))
        for e, v in zip(samples, np.round(np.clip(values, 1.0, 99.0), 1).tolist(), strict=True):
            e["disk_percent"] = v
        return events

    def incidents(self) -> list[dict[str, Any]]:
        """Nothing: this is the healthy baseline of ``disk_percent``."""
        return []


def merge_incidents(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combine incident entries reported by several processes (or one) into the
    ``incidents.json`` list: one entry per id, the affected devices united (sorted by
    hostname), ``onset`` their earliest ``since``, tickets summed; an incident that hit no
    device is left out. Sorted by onset, then id."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        known = merged.get(entry["id"])
        if known is None:
            merged[entry["id"]] = {
                **entry,
                "affected_devices": list(entry["affected_devices"]),
            }
            continue
        known["affected_devices"].extend(entry["affected_devices"])
        known["tickets"] += entry["tickets"]
    out = []
    for entry in merged.values():
        affected = sorted(entry["affected_devices"], key=lambda d: d["hostname"])
        if not affected:
            continue
        entry["affected_devices"] = affected
        entry["onset"] = min(d["since"] for d in affected)
        out.append(entry)
    return sorted(out, key=lambda e: (e["onset"], e["id"]))


def auto_incident_count(config: SimConfig) -> int:
    """How many incidents the ``auto`` plan has: none below 20 devices or 14 days; else about
    one per 150 devices per 30 days (at least one; at least six, one of each kind, from 200
    devices and 21 days)."""
    if config.devices < 20 or config.days < 14:
        return 0
    n = max(1, round(config.devices * config.days / (150 * 30)))
    if config.devices >= 200 and config.days >= 21:
        n = max(len(KINDS), n)
    return n


def default_incidents(config: SimConfig, seed: int, count: int | None = None) -> list[Injector]:
    """Plan a realistic mix of incidents for the fleet (deterministic for the arguments).

    ``count`` incidents (default :func:`auto_incident_count`), kinds in the rotation of
    :data:`KINDS` (a kind whose scopes are used up is skipped); onsets between day 7 and three
    days before the end (so a baseline exists), never two incidents on the same scope (app,
    OS version, hardware class, site, device) at once. Returns the injectors, a
    :class:`DiskUsage` first when any incident is planned; a fleet too short (under 9 days)
    gets none.
    """
    if count is None:
        count = auto_incident_count(config)
    if count <= 0 or config.days < 9:
        return []
    rng = np.random.default_rng([seed, 60, int(config.end_epoch), config.days, config.devices])
    devices = make_devices(config)
    lo = config.start_epoch + 7 * _DAY
    hi = max(lo + _DAY, config.end_epoch - 3 * _DAY)
    busy: dict[tuple[str, str], list[tuple[float, float]]] = {}
    planned: list[_Incident] = []

    def free(key: tuple[str, str], a: float, b: float) -> bool:
        return all(b <= x or a >= y for x, y in busy.get(key, []))

    def take(key: tuple[str, str], a: float, b: float) -> None:
        busy.setdefault(key, []).append((a, b))

    windows = [d for d in devices if d.os == "windows"]
    os_versions = sorted({d.os_version for d in windows})
    app_keys = [k for k in APPS if sum(any(a[0] == k for a in d.apps) for d in windows) >= 3]
    classes = [c for c in HARDWARE_CLASSES if sum(d.hardware_class == c for d in windows) >= 3]
    cohort: dict[tuple[str, str], int] = {}
    for d in devices:
        for p in d.probes:
            cohort[d.site, p] = cohort.get((d.site, p), 0) + 1
    site_targets = sorted(st for st, n in cohort.items() if n >= 3)
    regulars = [d for d in devices if d.joins_at == 0.0]
    inf = math.inf

    def plan(kind: str, number: int) -> _Incident | None:
        ident = f"INC-{number:03d}"
        for _attempt in range(25):
            t0 = float(rng.uniform(lo, hi))
            if kind == "boot_patch" and os_versions:
                version = os_versions[int(rng.integers(len(os_versions)))]
                if sum(d.os_version == version for d in windows) < 3:
                    continue
                if not free(("os_version", version), t0, inf):
                    continue
                take(("os_version", version), t0, inf)
                rev = int(rng.integers(3000, 5000))
                return BootPatch(
                    id=ident,
                    number=number,
                    start=t0,
                    os_version=version,
                    kb=f"KB50{int(rng.integers(40000, 49999))}",
                    build_from=f"{version}.{rev}",
                    build_to=f"{version}.{rev + int(rng.integers(40, 120))}",
                    rollout_days=float(rng.uniform(1.0, 3.0)),
                    slowdown=float(rng.uniform(0.4, 1.2)),
                )
            if kind in ("app_version_crash", "memory_leak_hangs") and app_keys:
                app = app_keys[int(rng.integers(len(app_keys)))]
                if not free(("app", app), t0, inf):
                    continue
                take(("app", app), t0, inf)
                version = _bump(str(APPS[app]["versions"][-1]), int(rng.integers(2, 40)))
                rollout = float(rng.uniform(2.0, 6.0))
                if kind == "app_version_crash":
                    modules = APPS[app]["modules"]
                    return AppVersionCrash(
                        id=ident,
                        number=number,
                        start=t0,
                        app=app,
                        version_to=version,
                        rollout_days=rollout,
                        multiplier=float(rng.uniform(5.0, 15.0)),
                        faulting_module=str(modules[int(rng.integers(len(modules)))]),
                        exception_code=("0xc0000005", "0xc0000409")[int(rng.integers(2))],
                    )
                return MemoryLeakHangs(
                    id=ident,
                    number=number,
                    start=t0,
                    app=app,
                    version_to=version,
                    rollout_days=rollout,
                    peak_multiplier=float(rng.uniform(8.0, 20.0)),
                    leak_mb_per_h=float(rng.uniform(150.0, 400.0)),
                )
            if kind == "saas_slow_site" and site_targets:
                weights = np.array([cohort[st] for st in site_targets], dtype=float)
                pick = int(rng.choice(len(site_targets), p=weights / weights.sum()))
                site, target = site_targets[pick]
                tz = ZoneInfo(next(s[2] for s in SITES if s[0] == site))
                local = datetime.fromtimestamp(t0, tz).date()
                while local.weekday() >= 5:
                    local += timedelta(days=1)
                hour = float(rng.uniform(8.0, 13.0))
                onset = datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()
                onset += hour * _HOUR
                until = onset + float(rng.uniform(2.0, 6.0)) * _DAY
                if onset >= config.end_epoch - _DAY or not free(("site", site), onset, until):
                    continue
                take(("site", site), onset, until)
                return SaasSlowSite(
                    id=ident,
                    number=number,
                    start=onset,
                    site=site,
                    target=target,
                    until=until,
                    slowdown=float(rng.uniform(3.0, 8.0)),
                    failure_rate=float(rng.uniform(0.03, 0.12)),
                )
            if kind == "driver_system_crash" and classes:
                hc = classes[int(rng.integers(len(classes)))]
                if not free(("hardware_class", hc), t0, inf):
                    continue
                take(("hardware_class", hc), t0, inf)
                name, file, version, publisher = _DRIVERS[int(rng.integers(len(_DRIVERS)))]
                return DriverSystemCrash(
                    id=ident,
                    number=number,
                    start=t0,
                    hardware_class=hc,
                    driver=name,
                    driver_file=file,
                    version_from=version,
                    version_to=_bump(version, int(rng.integers(1, 30))),
                    publisher=publisher,
                    bugcheck_code=_BUGCHECKS[int(rng.integers(len(_BUGCHECKS)))],
                    rate_per_h=float(rng.uniform(0.005, 0.02)),
                    rollout_days=float(rng.uniform(2.0, 5.0)),
                )
            if kind == "disk_filling" and regulars:
                device = regulars[int(rng.integers(len(regulars)))]
                if not free(("device", device.hostname), t0, inf):
                    continue
                take(("device", device.hostname), t0, inf)
                return DiskFilling(
                    id=ident,
                    number=number,
                    start=t0,
                    device_index=device.index,
                    hostname=device.hostname,
                    fill_days=float(rng.uniform(5.0, 12.0)),
                    full_percent=float(rng.uniform(97.0, 99.5)),
                )
        return None

    exhausted: set[str] = set()
    turn = 0
    while len(planned) < count and len(exhausted) < len(KINDS):
        kind = KINDS[turn % len(KINDS)]
        turn += 1
        if kind in exhausted:
            continue
        incident = plan(kind, len(planned) + 1)
        if incident is None:
            exhausted.add(kind)
        else:
            planned.append(incident)
    out: list[Injector] = [DiskUsage()] if planned else []
    out.extend(planned)
    return out
