"""The detectors: from a tenant's recent rollups and sparse events to candidate alerts.

Pure functions over plain Python/numpy inputs (no database here), so they can be tested and
replayed exactly; the statistics are scoring.detect's. Three detectors (docs/detection.md):

* **change cohorts** — for every software change (app update or install, OS patch, driver)
  adopted by at least ``min_devices`` devices in the last ``change_lookback``: do its
  adopters, since adopting, crash or hang more in that app (app changes), or crash, hang or
  boot slower (OS patches and drivers) than the devices that did not adopt it over the same
  recent window, together with the adopters' own week before the change (so a change that
  reaches the whole fleet still has a baseline)? A rate-ratio test (counts per active
  hour) or a Welch test of log boot seconds, with a strict z and a minimum effect. The
  change *is* the suspect, and its adopters are the alert's population.
* **site cohorts** — are one site's probes of a business web app, over the last two hours,
  slower than the other sites' and than the same site's over the last week? The suspect is
  the change adopted by most of the affected devices just before the onset, if one
  explains them.
* **device shifts** — a device's daily score series against its own robust baseline (CUSUM
  of robust z, :func:`scoring.detect.detect_series`), for slow, device-local degradation;
  and **filling disks** — a disk nearly full and still filling, reported before it slows
  the device down. The only detectors that may single out one device.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np

from scoring.detect import (
    DetectParams,
    detect_series,
    mean_difference_test,
    overlap,
    rate_ratio_test,
)

__all__ = [
    "APP_CHANGES",
    "DEFAULT_MIN_SCORE_DROP",
    "Candidate",
    "ChangeKey",
    "DetectionInputs",
    "DetectionSettings",
    "DeviceInfo",
    "change_cohorts",
    "detect",
    "device_shifts",
    "disk_filling",
    "severity",
    "site_cohorts",
    "suspect_change",
]

DEFAULT_MIN_SCORE_DROP: Final = 25.0
"""A device alert's minimum score drop for a persona without its own (points)."""

APP_CHANGES: Final = frozenset({"install", "update"})
"""Software changes that concern one application (the others concern the whole device)."""


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds of the detectors (defaults documented in docs/detection.md)."""

    min_devices: int = 5
    """Fewest devices in a fleet-wide alert's cohort (no alert singles out one person)."""
    z_open: float = 4.0
    """|z| a cohort test needs to open an alert (strict: many changes are tested each hour)."""
    z_keep: float = 2.0
    """|z| below which an open cohort alert counts as recovered."""
    min_rate_ratio: float = 2.0
    min_events: int = 3
    """Fewest events in the adopters' cohort before a rate is compared."""
    min_duration_ratio: float = 1.25
    """How much longer (geometric mean) boots must take after a change."""
    min_score_drop: float = 10.0
    """Points of Apdex score (0-100) a site's web-app score must lose."""
    window: timedelta = timedelta(days=3)
    """The recent window cohort tests compare (a recovered problem leaves it)."""
    before_window: timedelta = timedelta(days=7)
    """How far back an adopter's own history before the change joins the comparison."""
    change_lookback: timedelta = timedelta(days=14)
    site_baseline_days: int = 7
    site_window: timedelta = timedelta(hours=2)
    """The recent window a site's web-app probes are compared over."""
    device_min_history: int = 7
    device_h: float = 10.0
    device_k: float = 1.0
    device_sigma_floor: float = 5.0
    disk_full_at: float = 90.0
    """Disk use (%) from which a filling disk is reported."""
    disk_min_slope: float = 1.5
    """Points per day the disk must be filling by (a steady, full disk is not news)."""
    suspect_min_coverage: float = 0.6
    """Share of an alert's affected devices a suspected change must have reached."""
    suspect_min_precision: float = 0.5
    """For an alert on several devices, the share of a suspect's adopters that must be
    affected: a change most of whose adopters are fine does not explain the problem (a
    fleet-wide browser update is not why one site is slow)."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the detectors know of a device."""

    device_id: uuid.UUID
    hostname: str
    site: str | None
    persona: str | None


@dataclass(frozen=True)
class ChangeKey:
    """One software change as a cohort: (kind, name, target version or KB)."""

    change: str
    name: str
    version: str

    def label(self) -> str:
        """Human-readable: ``teams.exe 24.3`` or ``os_patch KB5031455``."""
        return f"{self.name} {self.version}".strip()


@dataclass
class DetectionInputs:
    """A tenant's data for one detection run, all with ``ts <= as_of``."""

    as_of: datetime
    devices: Mapping[uuid.UUID, DeviceInfo]
    day_rows: Sequence[
        tuple[uuid.UUID, date, float, Mapping[str, Any], Mapping[str, Any], float | None]
    ]
    """(device, day, active_s, counts, metrics, score) of the scored device-days."""
    changes: Sequence[tuple[uuid.UUID, datetime, Mapping[str, Any]]]
    """(device, ts, data) of ``software_change`` events in the lookback."""
    app_events: Sequence[tuple[uuid.UUID, str, datetime, Mapping[str, Any]]]
    """(device, type, ts, data) of ``app_crash``, ``app_hang``, ``system_crash`` and ``boot``
    events (the sparse ones)."""
    app_presence: Sequence[tuple[uuid.UUID, date, str]] = field(default_factory=list)
    """(device, day, app name) of apps present on device-days."""
    probes: Sequence[tuple[uuid.UUID, datetime, Mapping[str, Any]]] = field(default_factory=list)
    """(device, ts, data) of ``probe`` events of the site baseline period."""
    measures: Mapping[tuple[uuid.UUID, date], Mapping[str, Any]] = field(default_factory=dict)
    """The raw daily measures of each device-day (``device_day_scores.measures``)."""
    min_score_drop: Mapping[str, float] = field(default_factory=dict)
    """Per persona name, the points below its baseline a device's score must drop for a
    device alert (the persona's ``alert_min_score_drop``); personas not named use
    :data:`DEFAULT_MIN_SCORE_DROP`."""


@dataclass
class Candidate:
    """A degradation a detector found in this run (an alert to open or update)."""

    kind: str
    scope: str
    scope_key: str
    metric: str
    title: str
    onset: datetime
    affected: list[uuid.UUID]
    baseline: float
    current: float
    effect_size: float
    z: float
    evidence: dict[str, Any]
    suspected_change: dict[str, Any] | None

    @property
    def fingerprint(self) -> str:
        """What makes two findings the same problem."""
        return f"{self.kind}|{self.scope}|{self.scope_key}|{self.metric}"


def severity(affected: int, effect: float, scope: str) -> str:
    """``critical`` / ``high`` / ``medium`` / ``low`` from the population hit and the effect.

    ``effect`` is a rate ratio (≥ 1) or, for scores, the points lost divided by 10.
    """
    if scope == "device":
        return "medium" if effect >= 4 else "low"
    if affected >= 50 or effect >= 10:
        return "critical"
    if affected >= 20 or effect >= 5:
        return "high"
    if affected >= 5:
        return "medium"
    return "low"


def _norm(name: str) -> str:
    n = name.casefold().strip()
    return n[:-4] if n.endswith(".exe") else n


def _change_key(data: Mapping[str, Any]) -> ChangeKey | None:
    change = str(data.get("change", ""))
    name = str(data.get("name", ""))
    if change == "removal" or not name:
        return None
    version = str(data.get("version_to") or data.get("kb") or "")
    return ChangeKey(change=change, name=name, version=version)


def _adoptions(inputs: DetectionInputs) -> dict[ChangeKey, dict[uuid.UUID, datetime]]:
    """Each change and when each device adopted it (its first event of it)."""
    out: dict[ChangeKey, dict[uuid.UUID, datetime]] = defaultdict(dict)
    for device, ts, data in inputs.changes:
        key = _change_key(data)
        if key is not None and device not in out[key]:
            out[key][device] = ts
    return out


def _moved_on(inputs: DetectionInputs) -> dict[ChangeKey, set[uuid.UUID]]:
    """Per change, the devices that changed the same software again after adopting it
    (another version, or a removal): they are no longer on it, so neither its cohort nor
    its peers (their events in the window belong partly to each version)."""
    history: dict[tuple[uuid.UUID, str], list[ChangeKey | None]] = defaultdict(list)
    for device, _ts, data in inputs.changes:  # in time order
        name = _norm(str(data.get("name", "")))
        if name:
            history[(device, name)].append(_change_key(data))
    out: dict[ChangeKey, set[uuid.UUID]] = defaultdict(set)
    for (device, _name), keys in history.items():
        for i, key in enumerate(keys):
            if key is not None and any(later != key for later in keys[i + 1 :]):
                out[key].add(device)
    return out


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _exposure_h(
    active: Mapping[tuple[uuid.UUID, date], float],
    device: uuid.UUID,
    start: datetime,
    end: datetime,
) -> float:
    """Active hours of a device in [start, end]: whole days, the first prorated by clock time."""
    total = 0.0
    day = start.date()
    while day <= end.date():
        a = active.get((device, day), 0.0)
        if day == start.date():
            a *= max(0.0, 1.0 - (start - _day_start(day)).total_seconds() / 86400.0)
        total += a
        day += timedelta(days=1)
    return total / 3600.0


class _Exposure:
    """:func:`_exposure_h` remembered within one run (many cohorts share peers and windows)."""

    def __init__(self, active: Mapping[tuple[uuid.UUID, date], float]) -> None:
        self.active = active
        self._seen: dict[tuple[uuid.UUID, datetime, datetime], float] = {}

    def hours(self, device: uuid.UUID, start: datetime, end: datetime) -> float:
        key = (device, start, end)
        if key not in self._seen:
            self._seen[key] = _exposure_h(self.active, device, start, end)
        return self._seen[key]


def _events_by_kind(
    inputs: DetectionInputs,
) -> dict[tuple[str, str | None], list[tuple[uuid.UUID, str, datetime, Mapping[str, Any]]]]:
    """The sparse events by (type, None) and by (type, normalised app name), in order."""
    out: dict[tuple[str, str | None], list[tuple[uuid.UUID, str, datetime, Mapping[str, Any]]]]
    out = defaultdict(list)
    for event in inputs.app_events:
        out[(event[1], None)].append(event)
        if "app_name" in event[3]:
            out[(event[1], _norm(str(event[3]["app_name"])))].append(event)
    return out


def change_cohorts(inputs: DetectionInputs, s: DetectionSettings) -> list[Candidate]:
    """Cohort tests of every recent software change against its non-adopting peers.

    A change's cohort is the devices still on it: one that later took another version of the
    same software (or removed it) has left, or a fixed version would keep its predecessor
    blamed for the crashes of the version that followed it.
    """
    as_of = inputs.as_of
    active = {(d, day): a for d, day, a, _c, _m, _s in inputs.day_rows}
    present: dict[str, set[uuid.UUID]] = defaultdict(set)
    for d, _day, app in inputs.app_presence:
        present[_norm(app)].add(d)
    seen = {d for d, *_ in inputs.day_rows}
    exposure = _Exposure(active)
    by_kind = _events_by_kind(inputs)
    moved_on = _moved_on(inputs)
    out: list[Candidate] = []
    for key, ever in sorted(_adoptions(inputs).items(), key=lambda kv: kv[0].label()):
        gone = moved_on.get(key, set())
        adopted = {d: ts for d, ts in ever.items() if d not in gone}
        adopters = [d for d in adopted if d in inputs.devices]
        if len(adopters) < s.min_devices:
            continue
        first = min(adopted[d] for d in adopters)
        start = max(first, as_of - s.window)
        if key.change in APP_CHANGES:
            peers = sorted(present.get(_norm(key.name), set()) - set(adopters) - gone)
            tests = [("app_crash", "app_crash_rate"), ("app_hang", "app_hang_rate")]
        else:
            peers = sorted(seen - set(adopters) - gone)
            tests = [("system_crash", "system_crash_rate"), ("app_hang", "app_hang_rate")]
        for event_type, metric in tests:
            app_key = _norm(key.name) if key.change in APP_CHANGES else None
            cand = _rate_cohort(
                inputs,
                s,
                key,
                adopted,
                adopters,
                peers,
                start,
                event_type,
                metric,
                exposure,
                by_kind.get((event_type, app_key), []),
            )
            if cand is not None:
                out.append(cand)
        if key.change not in APP_CHANGES:
            cand = _boot_cohort(
                inputs, s, key, adopted, adopters, peers, start, by_kind.get(("boot", None), [])
            )
            if cand is not None:
                out.append(cand)
    return out


def _change_dict(
    key: ChangeKey,
    adopted: Mapping[uuid.UUID, datetime],
    affected: Sequence[uuid.UUID],
    onset: datetime,
) -> dict[str, Any]:
    adopters = list(adopted)
    coverage, precision, jaccard = overlap([str(a) for a in affected], [str(a) for a in adopters])
    first = min(adopted.values())
    return {
        "type": "software_change",
        "change": key.change,
        "name": key.name,
        "version": key.version,
        "adopters": len(adopters),
        "first_adopted_at": first.isoformat(),
        "coverage": round(coverage, 3),
        "precision": round(precision, 3),
        "jaccard": round(jaccard, 3),
        "lag_h": round((onset - first).total_seconds() / 3600.0, 1),
    }


def _rate_cohort(
    inputs: DetectionInputs,
    s: DetectionSettings,
    key: ChangeKey,
    adopted: Mapping[uuid.UUID, datetime],
    adopters: Sequence[uuid.UUID],
    peers: Sequence[uuid.UUID],
    start: datetime,
    event_type: str,
    metric: str,
    exposure: _Exposure,
    events: Sequence[tuple[uuid.UUID, str, datetime, Mapping[str, Any]]],
) -> Candidate | None:
    """``events``: those of ``event_type`` (of the changed app, for an app change)."""
    as_of = inputs.as_of
    adopter_set = set(adopters)
    app_change = key.change in APP_CHANGES
    count_a = count_b = 0
    hit: dict[uuid.UUID, datetime] = {}
    peer_set = set(peers)
    for device, _kind, ts, _data in events:
        if device in adopter_set:
            if ts > adopted[device] and ts > start:
                count_a += 1
                hit.setdefault(device, ts)
            elif adopted[device] - s.before_window < ts <= adopted[device]:
                count_b += 1  # the same device before the change: its own baseline
        elif device in peer_set and ts > start:
            count_b += 1
    exp_a = sum(exposure.hours(d, max(start, adopted[d]), as_of) for d in adopters)
    # the comparison: peers over the window, and the adopters over the week before adopting
    exp_b = sum(exposure.hours(d, start, as_of) for d in peers) + sum(
        exposure.hours(d, adopted[d] - s.before_window, adopted[d]) for d in adopters
    )
    if count_a < max(s.min_events, 1) or exp_a <= 0 or exp_b <= 0:
        return None
    ratio, z = (float(v) for v in rate_ratio_test(count_a, exp_a, count_b, exp_b))
    if not (z >= s.z_open and ratio >= s.min_rate_ratio):
        return None
    # the population at risk is the cohort: every device that took the change
    affected = sorted(adopters)
    onset = min(hit.values())
    rate_a, rate_b = count_a / exp_a, count_b / exp_b
    scope = "app_version" if app_change else "change"
    scope_key = f"{key.name}@{key.version}" if app_change else f"{key.change}:{key.label()}"
    what = event_type.replace("_", " ")
    return Candidate(
        kind="cohort",
        scope=scope,
        scope_key=scope_key,
        metric=metric,
        title=f"{what}s x{ratio:.1f} on devices with {key.label()} ({len(adopters)} adopters)",
        onset=onset,
        affected=affected,
        baseline=rate_b,
        current=rate_a,
        effect_size=ratio,
        z=z,
        evidence={
            "test": "poisson rate ratio",
            "adopters": {
                "devices": len(adopters),
                "with_events": len(hit),
                "events": count_a,
                "active_h": round(exp_a, 1),
            },
            "peers": {"devices": len(peers), "events": count_b, "active_h": round(exp_b, 1)},
            "rate_per_h": {"baseline": round(rate_b, 5), "now": round(rate_a, 5)},
            "z": round(z, 2),
            "window_start": start.isoformat(),
        },
        suspected_change=_change_dict(key, adopted, affected, onset),
    )


def _boot_cohort(
    inputs: DetectionInputs,
    s: DetectionSettings,
    key: ChangeKey,
    adopted: Mapping[uuid.UUID, datetime],
    adopters: Sequence[uuid.UUID],
    peers: Sequence[uuid.UUID],
    start: datetime,
    boots: Sequence[tuple[uuid.UUID, str, datetime, Mapping[str, Any]]],
) -> Candidate | None:
    """Boot durations after the change against the peers' boots in the same window.

    Compared on the log of the seconds (boot times are log-normal; the difference of means
    of logs is the log of the ratio of geometric means), Welch's z.
    """
    peer_set = set(peers)
    after: dict[uuid.UUID, list[float]] = defaultdict(list)
    peer_vals: list[float] = []
    for device, _kind, ts, data in boots:
        value = data.get("boot_duration_s")
        if not isinstance(value, int | float) or value <= 0:
            continue
        if device in adopted and device in inputs.devices:
            if ts > adopted[device] and ts > start:  # a boot after the change
                after[device].append(math.log(float(value)))
            elif adopted[device] - s.before_window < ts <= adopted[device]:
                peer_vals.append(math.log(float(value)))  # its own boots before the change
        elif device in peer_set and ts > start:
            peer_vals.append(math.log(float(value)))
    a = np.array([v for vals in after.values() for v in vals])
    b = np.array(peer_vals)
    if len(after) < s.min_devices or len(b) < s.min_devices or len(a) < 2:
        return None
    diff, z = (
        float(v)
        for v in mean_difference_test(
            a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b)
        )
    )
    ratio = math.exp(diff) if not math.isnan(diff) else math.nan
    if math.isnan(z) or not (z >= s.z_open and ratio >= s.min_duration_ratio):
        return None
    onset = min(adopted[d] for d in after)
    return Candidate(
        kind="cohort",
        scope="change",
        scope_key=f"{key.change}:{key.label()}",
        metric="boot",
        title=f"boots x{ratio:.2f} as long after {key.label()} ({len(after)} devices)",
        onset=onset,
        affected=sorted(adopters),
        baseline=math.exp(float(b.mean())),
        current=math.exp(float(a.mean())),
        effect_size=ratio,
        z=z,
        evidence={
            "test": "welch on log boot seconds",
            "adopters": {
                "devices": len(adopters),
                "booted_since": len(after),
                "boots": len(a),
                "geomean_s": round(math.exp(float(a.mean())), 1),
            },
            "peers": {
                "devices": len(peers),
                "boots": len(b),
                "geomean_s": round(math.exp(float(b.mean())), 1),
            },
            "z": round(z, 2),
            "window_start": start.isoformat(),
        },
        suspected_change=_change_dict(key, adopted, sorted(adopters), onset),
    )


def suspect_change(
    inputs: DetectionInputs,
    affected: Sequence[uuid.UUID],
    onset: datetime,
    s: DetectionSettings | None = None,
) -> dict[str, Any] | None:
    """The change adopted just before ``onset`` that best covers ``affected`` (or None).

    Candidates: changes first adopted in [onset - 3 days, onset + 1 hour]; score = coverage x
    precision. A suspect must cover at least ``suspect_min_coverage`` of the affected
    devices and, when several devices are affected, at least ``suspect_min_precision`` of
    its own adopters must be among them. A one-device alert (whose precision is 1 / adopters
    by nature) names only a change with fewer than ``min_devices`` adopters: a change that
    many devices took is a cohort, judged on all of them by :func:`change_cohorts`; if it
    were the cause its other adopters would show it and that alert would name it. Blaming a
    routine update for one device's trouble because it happened to land that week would
    send the technician after the wrong thing.
    """
    s = s or DetectionSettings()
    floor = s.suspect_min_precision if len(affected) > 1 else 0.0
    best: tuple[float, dict[str, Any]] | None = None
    for key, adopted in _adoptions(inputs).items():
        first = min(adopted.values())
        if not onset - timedelta(days=3) <= first <= onset + timedelta(hours=1):
            continue
        if len(affected) == 1 and len(adopted) >= s.min_devices:
            continue
        coverage, precision, _ = overlap([str(a) for a in affected], [str(a) for a in adopted])
        if coverage < s.suspect_min_coverage or precision < floor:
            continue
        score = coverage * precision
        if best is None or score > best[0]:
            best = (score, _change_dict(key, adopted, affected, onset))
    return best[1] if best else None


def site_cohorts(inputs: DetectionInputs, s: DetectionSettings) -> list[Candidate]:
    """Business web apps per site over the last hours: slower than at the other sites and
    than at the same site over the previous week (raw probe events, so within hours).

    Per (site, target), on the log of successful probes' ``total_s``: Welch's z against the
    other sites' probes of the same target in the same window, and against the site's own
    probes of the last ``site_baseline_days`` (both at least ``z_open``, and the geometric
    mean at least ``min_duration_ratio`` times both); or the share of failed probes, by the
    rate-ratio test against the other sites.
    """
    since = inputs.as_of - s.site_window
    base_since = inputs.as_of - timedelta(days=s.site_baseline_days)
    now: dict[tuple[str, str], list[tuple[uuid.UUID, float]]] = defaultdict(list)
    past: dict[tuple[str, str], list[float]] = defaultdict(list)
    fails: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for device, ts, data in inputs.probes:
        info = inputs.devices.get(device)
        target = str(data.get("target", ""))
        if info is None or info.site is None or not target:
            continue
        key = (info.site, target)
        ok = bool(data.get("ok"))
        value = data.get("total_s")
        if ts > since:
            fails[key][0] += 0 if ok else 1
            fails[key][1] += 1
        if not ok or not isinstance(value, int | float) or value <= 0:
            continue
        if ts > since:
            now[key].append((device, math.log(float(value))))
        elif ts > base_since:
            past[key].append(math.log(float(value)))
    out: list[Candidate] = []
    for key in sorted(now):
        site, target = key
        mine = np.array([v for _, v in now[key]])
        others = np.array(
            [
                v
                for (o_site, o_target), vals in now.items()
                if o_target == target and o_site != site
                for _, v in vals
            ]
        )
        own = np.array(past.get(key, []))
        devices = {d for d, _ in now[key]}
        if len(devices) < s.min_devices or len(others) < s.min_devices or len(own) < s.min_devices:
            continue
        d_peer, z_peer = (
            float(v)
            for v in mean_difference_test(
                mine.mean(),
                mine.var(ddof=1),
                len(mine),
                others.mean(),
                others.var(ddof=1),
                len(others),
            )
        )
        d_own, z_own = (
            float(v)
            for v in mean_difference_test(
                mine.mean(), mine.var(ddof=1), len(mine), own.mean(), own.var(ddof=1), len(own)
            )
        )
        if any(math.isnan(x) for x in (z_peer, z_own)):
            continue
        ratio = math.exp(min(d_peer, d_own))
        if not (z_peer >= s.z_open and z_own >= s.z_open and ratio >= s.min_duration_ratio):
            continue
        # "slow" = beyond the site's own usual spread (3 sigma of its log seconds) and by at
        # least the minimum ratio: noise alone rarely gets there
        limit = float(own.mean()) + max(math.log(s.min_duration_ratio), 3 * float(own.std()))
        affected = sorted({d for d, v in now[key] if v > limit})
        if len(affected) < s.min_devices:
            continue
        slow_times = [
            ts
            for d, ts, data in inputs.probes
            if ts > since
            and d in set(affected)
            and str(data.get("target", "")) == target
            and isinstance(data.get("total_s"), int | float)
            and data["total_s"] > 0
            and math.log(float(data["total_s"])) > limit
        ]
        onset = min(slow_times) if slow_times else since
        failed, total = fails[key]
        out.append(
            Candidate(
                kind="cohort",
                scope="site",
                scope_key=f"{site}:{target}",
                metric="probe_latency",
                title=f"{target} x{ratio:.1f} slower at site {site} ({len(affected)} devices)",
                onset=onset,
                affected=affected,
                baseline=math.exp(float(own.mean())),
                current=math.exp(float(mine.mean())),
                effect_size=ratio,
                z=min(z_peer, z_own),
                evidence={
                    "test": "welch on log probe seconds, against other sites and the site's past",
                    "site": {
                        "devices": len(devices),
                        "probes": len(mine),
                        "failed": failed,
                        "geomean_s": round(math.exp(float(mine.mean())), 3),
                    },
                    "other_sites": {
                        "probes": len(others),
                        "geomean_s": round(math.exp(float(others.mean())), 3),
                    },
                    "own_past": {
                        "probes": len(own),
                        "geomean_s": round(math.exp(float(own.mean())), 3),
                    },
                    "z_vs_peers": round(z_peer, 2),
                    "z_vs_own_past": round(z_own, 2),
                    "probe_failures": {"failed": failed, "of": total},
                    "window_start": since.isoformat(),
                },
                suspected_change=suspect_change(inputs, affected, onset, s),
            )
        )
    return out


def device_shifts(inputs: DetectionInputs, s: DetectionSettings) -> list[Candidate]:
    """Each device's daily score against its own robust baseline (CUSUM).

    A flagged change point opens a device alert only when today's score is at least the
    persona's ``alert_min_score_drop`` points below the baseline: what is news differs by
    persona (a contact-centre agent's day may be judged on a smaller drop than a developer's).
    """
    series: dict[uuid.UUID, list[tuple[date, float]]] = defaultdict(list)
    for device, day, _a, _c, _m, score in inputs.day_rows:
        if score is not None and device in inputs.devices:
            series[device].append((day, float(score)))
    params = DetectParams(
        direction=-1,
        k=s.device_k,
        h=s.device_h,
        window=28,
        min_history=s.device_min_history,
        sigma_floor=s.device_sigma_floor,
    )
    today = inputs.as_of.date()
    out: list[Candidate] = []
    for device in sorted(series):
        points = sorted(series[device])
        if len(points) <= s.device_min_history or points[-1][0] != today:
            continue
        ts = np.array([_day_start(d).timestamp() for d, _ in points])
        vs = np.array([v for _, v in points])
        result, _state = detect_series(ts, vs, params=params)
        if not result.flag[-1]:
            continue
        baseline = float(result.baseline[-1])
        drop = baseline - float(vs[-1])
        info = inputs.devices[device]
        min_drop = inputs.min_score_drop.get(info.persona or "", DEFAULT_MIN_SCORE_DROP)
        if drop < min_drop:
            continue
        onset = datetime.fromtimestamp(float(result.onset[-1]), UTC)
        out.append(
            Candidate(
                kind="change_point",
                scope="device",
                scope_key=str(device),
                metric="score",
                title=f"{info.hostname}: experience score -{drop:.0f} points below its baseline",
                onset=onset,
                affected=[device],
                baseline=baseline,
                current=float(vs[-1]),
                effect_size=drop / 10.0,
                z=float(result.z[-1]),
                evidence={
                    "test": "cusum of robust z (daily score)",
                    "cusum": round(float(result.cusum[-1]), 2),
                    "h": s.device_h,
                    "min_drop": min_drop,
                    "series": [
                        {"day": d.isoformat(), "score": round(v, 1)} for d, v in points[-14:]
                    ],
                },
                suspected_change=suspect_change(inputs, [device], onset, s),
            )
        )
    return out


def disk_filling(inputs: DetectionInputs, s: DetectionSettings) -> list[Candidate]:
    """Devices whose disk is nearly full and still filling (a device-scope forecast).

    Today's highest disk use must be at least ``disk_full_at`` and the least-squares slope
    of the daily highs over the last 7 days at least ``disk_min_slope`` points per day; the
    onset is the day of the lowest use in the last 14 days, where the rise began.
    """
    today = inputs.as_of.date()
    series: dict[uuid.UUID, list[tuple[date, float]]] = defaultdict(list)
    for (device, day), m in inputs.measures.items():
        value = m.get("disk_percent_max")
        if isinstance(value, int | float) and (today - day).days < 14:
            series[device].append((day, float(value)))
    out: list[Candidate] = []
    for device in sorted(series):
        points = sorted(series[device])
        if points[-1][0] != today or points[-1][1] < s.disk_full_at or device not in inputs.devices:
            continue
        recent = [(d, v) for d, v in points if (today - d).days < 7]
        if len(recent) < 4:
            continue
        x = np.array([(d - today).days for d, _ in recent], dtype=np.float64)
        y = np.array([v for _, v in recent])
        slope = float(np.polyfit(x, y, 1)[0])
        if slope < s.disk_min_slope:
            continue
        low_day = min(points, key=lambda p: (p[1], p[0]))[0]
        onset = _day_start(low_day)
        left = max(0.0, 100.0 - points[-1][1])
        info = inputs.devices[device]
        out.append(
            Candidate(
                kind="change_point",
                scope="device",
                scope_key=str(device),
                metric="disk_percent",
                title=f"{info.hostname}: disk {points[-1][1]:.0f} % full, filling "
                f"{slope:.1f} points a day (full in about {left / slope:.0f} days)",
                onset=onset,
                affected=[device],
                baseline=min(v for _, v in points),
                current=points[-1][1],
                effect_size=slope,
                z=slope,
                evidence={
                    "test": "disk use above the limit and rising (least squares, 7 days)",
                    "limit_percent": s.disk_full_at,
                    "slope_points_per_day": round(slope, 2),
                    "series": [
                        {"day": d.isoformat(), "disk_percent": round(v, 1)} for d, v in points
                    ],
                },
                suspected_change=suspect_change(inputs, [device], onset, s),
            )
        )
    return out


def detect(inputs: DetectionInputs, s: DetectionSettings | None = None) -> list[Candidate]:
    """Every detector on one tenant's inputs; candidates in a stable order."""
    settings = s or DetectionSettings()
    found = change_cohorts(inputs, settings) + site_cohorts(inputs, settings)
    found += device_shifts(inputs, settings) + disk_filling(inputs, settings)
    return sorted(found, key=lambda c: c.fingerprint)
