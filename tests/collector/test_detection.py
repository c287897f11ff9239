"""The detectors on hand-made tenant data (collector.alerts.detection, no database).

Each detector gets a fleet where its problem is planted and one where it is not: it must find
the first, name the right change, and stay quiet on the second.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from collector.alerts.detection import (
    DetectionInputs,
    DetectionSettings,
    DeviceInfo,
    change_cohorts,
    detect,
    device_shifts,
    disk_filling,
    severity,
    site_cohorts,
)

AS_OF = datetime(2026, 11, 20, 15, tzinfo=UTC)
TODAY = AS_OF.date()
DEVICES = [uuid.UUID(int=i + 1) for i in range(40)]


def infos(site_of: dict[uuid.UUID, str] | None = None) -> dict[uuid.UUID, DeviceInfo]:
    return {
        d: DeviceInfo(d, f"ws-{i:03d}", (site_of or {}).get(d, "nyc"), "knowledge_worker")
        for i, d in enumerate(DEVICES)
    }


def days(n: int) -> list[date]:
    return [TODAY - timedelta(days=k) for k in range(n - 1, -1, -1)]


def rows(
    metrics_of: Any = None, score_of: Any = None, n_days: int = 21
) -> list[tuple[uuid.UUID, date, float, dict[str, Any], dict[str, Any], float | None]]:
    out = []
    for d in DEVICES:
        for day in days(n_days):
            m = metrics_of(d, day) if metrics_of else {"boot": 90.0}
            s = score_of(d, day) if score_of else 85.0
            out.append((d, day, 8 * 3600.0, {}, m, s))
    return out


def update(device: uuid.UUID, ts: datetime, name: str = "teams.exe", to: str = "2.0") -> Any:
    return (device, ts, {"change": "update", "name": name, "version_from": "1.0", "version_to": to})


def crash(device: uuid.UUID, ts: datetime, version: str, name: str = "teams.exe") -> Any:
    return (device, "app_crash", ts, {"app_name": name, "app_version": version})


def presence() -> list[tuple[uuid.UUID, date, str]]:
    return [(d, day, "teams.exe") for d in DEVICES for day in days(3)]


def test_an_app_version_that_crashes_is_found_with_its_change() -> None:
    adopters = DEVICES[:12]
    adopted_at = AS_OF - timedelta(days=1, hours=6)
    changes = [update(d, adopted_at + timedelta(minutes=i)) for i, d in enumerate(adopters)]
    events = [
        crash(d, adopted_at + timedelta(hours=2 + k), "2.0") for d in adopters for k in range(2)
    ]
    events += [crash(d, AS_OF - timedelta(hours=30), "1.0") for d in DEVICES[12:15]]
    inputs = DetectionInputs(AS_OF, infos(), rows(), changes, events, presence())
    found = change_cohorts(inputs, DetectionSettings())
    (alert,) = [c for c in found if c.metric == "app_crash_rate"]
    assert alert.scope == "app_version" and alert.scope_key == "teams.exe@2.0"
    assert set(alert.affected) == set(adopters)
    assert alert.onset == adopted_at + timedelta(hours=2)
    assert alert.effect_size > 2 and alert.z >= 4
    assert alert.suspected_change is not None
    assert alert.suspected_change["name"] == "teams.exe"
    assert alert.suspected_change["coverage"] == 1.0
    # the same update, crashing no more than the old version: nothing
    calm = [crash(d, adopted_at + timedelta(hours=3), "2.0") for d in adopters[:2]]
    calm += [crash(d, AS_OF - timedelta(hours=20), "1.0") for d in DEVICES[12:20]]
    quiet = DetectionInputs(AS_OF, infos(), rows(), changes, calm, presence())
    assert change_cohorts(quiet, DetectionSettings()) == []


def test_the_crashes_of_a_later_version_are_not_blamed_on_the_one_before() -> None:
    # everyone takes 2.0 (fine); then a dozen take 2.1, which crashes
    first = AS_OF - timedelta(days=2, hours=6)
    changes = [update(d, first + timedelta(minutes=i)) for i, d in enumerate(DEVICES)]
    then = AS_OF - timedelta(days=1, hours=6)
    bad = DEVICES[:12]
    changes += [update(d, then + timedelta(minutes=i), to="2.1") for i, d in enumerate(bad)]
    events = [crash(d, then + timedelta(hours=2 + k), "2.1") for d in bad for k in range(3)]
    events += [crash(d, AS_OF - timedelta(hours=30), "2.0") for d in DEVICES[20:23]]
    inputs = DetectionInputs(AS_OF, infos(), rows(), changes, events, presence())
    found = [c for c in change_cohorts(inputs, DetectionSettings()) if c.metric == "app_crash_rate"]
    assert [c.scope_key for c in found] == ["teams.exe@2.1"]
    assert set(found[0].affected) == set(bad)


def test_an_os_patch_that_slows_boot_is_found() -> None:
    adopters = set(DEVICES[:15])
    patched_at = datetime.combine(TODAY - timedelta(days=2), datetime.min.time(), UTC)
    changes = [
        (
            d,
            patched_at + timedelta(hours=18),
            {"change": "os_patch", "name": "Windows", "kb": "KB5031455"},
        )
        for d in sorted(adopters)
    ]
    rng = np.random.default_rng(1)
    boots = []
    for d in DEVICES:
        for k in range(3):  # a boot each morning of the last three days
            ts = patched_at + timedelta(days=k, hours=8, minutes=int(rng.integers(60)))
            slow = d in adopters and ts > patched_at + timedelta(hours=18)
            seconds = float(rng.lognormal(np.log(60 if slow else 35), 0.2))
            boots.append((d, "boot", ts, {"boot_duration_s": seconds}))
    boots.sort(key=lambda e: e[2])
    inputs = DetectionInputs(AS_OF, infos(), rows(), changes, boots, [])
    found = [c for c in change_cohorts(inputs, DetectionSettings()) if c.metric == "boot"]
    assert len(found) == 1
    assert found[0].scope_key == "os_patch:Windows KB5031455"
    assert set(found[0].affected) == adopters
    assert 1.5 < found[0].effect_size < 2.0  # 60 s against 35 s
    # the same patch on boots no slower than the peers': nothing
    calm = [
        (d, k, ts, {"boot_duration_s": float(rng.lognormal(np.log(35), 0.2))})
        for d, k, ts, _ in boots
    ]
    quiet = DetectionInputs(AS_OF, infos(), rows(), changes, calm, [])
    assert [c for c in change_cohorts(quiet, DetectionSettings()) if c.metric == "boot"] == []


SLOW_ONSET = AS_OF - timedelta(minutes=90)
SITE_OF = {d: ("paris" if i < 10 else "nyc") for i, d in enumerate(DEVICES)}


def slow_site_probes() -> list[tuple[uuid.UUID, datetime, dict[str, Any]]]:
    """A week of hourly CRM probes, then every 20 minutes, slow at Paris from SLOW_ONSET."""
    rng = np.random.default_rng(2)
    probes = []
    for d in DEVICES:
        for k in range(7 * 24):  # a probe an hour for a week, then every 20 minutes
            ts = AS_OF - timedelta(hours=7 * 24 - k)
            probes.append(
                (
                    d,
                    ts,
                    {
                        "target": "crm",
                        "ok": True,
                        "total_s": float(rng.lognormal(np.log(0.3), 0.3)),
                    },
                )
            )
        for k in range(6):
            ts = AS_OF - timedelta(minutes=115 - 20 * k)
            slow = SITE_OF[d] == "paris" and ts > SLOW_ONSET
            total = float(rng.lognormal(np.log(1.5 if slow else 0.3), 0.3))
            probes.append((d, ts, {"target": "crm", "ok": True, "total_s": total}))
    probes.sort(key=lambda p: p[1])
    return probes


def test_a_slow_site_is_found_within_hours_and_other_sites_are_not() -> None:
    inputs = DetectionInputs(AS_OF, infos(SITE_OF), rows(), [], [], [], probes=slow_site_probes())
    found = site_cohorts(inputs, DetectionSettings())
    assert [(c.scope, c.scope_key, c.metric) for c in found] == [
        ("site", "paris:crm", "probe_latency")
    ]
    assert len(found[0].affected) == 10 and found[0].suspected_change is None
    assert SLOW_ONSET - timedelta(minutes=30) <= found[0].onset <= AS_OF
    assert found[0].effect_size > 2


def test_a_slow_site_blames_a_change_only_if_it_is_mostly_on_that_site() -> None:
    day_before = SLOW_ONSET - timedelta(days=1)
    fleet_wide = [update(d, day_before, "chrome.exe", "131.0") for d in DEVICES]
    paris_only = [update(d, day_before, "zscaler.exe", "4.5") for d in DEVICES[:10]]
    blamed = {}
    for name, changes in (("fleet", fleet_wide), ("paris", fleet_wide + paris_only)):
        inputs = DetectionInputs(
            AS_OF, infos(SITE_OF), rows(), changes, [], [], probes=slow_site_probes()
        )
        (found,) = site_cohorts(inputs, DetectionSettings())
        blamed[name] = found.suspected_change
    # Every Paris device took the browser update, but so did 30 devices that are fine.
    assert blamed["fleet"] is None
    paris = blamed["paris"]
    assert paris is not None and paris["name"] == "zscaler.exe" and paris["version"] == "4.5"
    assert paris["coverage"] == 1.0 and paris["precision"] == 1.0
    # With the floor lowered to nothing, the fleet-wide update would have been named.
    loose = DetectionSettings(suspect_min_precision=0.0)
    inputs = DetectionInputs(
        AS_OF, infos(SITE_OF), rows(), fleet_wide, [], [], probes=slow_site_probes()
    )
    (found,) = site_cohorts(inputs, loose)
    assert found.suspected_change is not None and found.suspected_change["name"] == "chrome.exe"


def test_a_device_sliding_down_is_found_alone() -> None:
    rng = np.random.default_rng(3)
    sick = DEVICES[7]

    def score(d: uuid.UUID, day: date) -> float:
        age = (TODAY - day).days
        drift = max(0, 6 - age) * 12.0 if d == sick else 0.0
        return float(rng.normal(85, 3) - drift)

    inputs = DetectionInputs(AS_OF, infos(), rows(score_of=score), [], [], [])
    found = device_shifts(inputs, DetectionSettings())
    assert [c.scope_key for c in found] == [str(sick)]
    assert found[0].scope == "device" and found[0].affected == [sick]


def test_how_large_a_device_drop_must_be_follows_its_persona() -> None:
    rng = np.random.default_rng(5)
    agent, developer = DEVICES[3], DEVICES[9]

    def score(d: uuid.UUID, day: date) -> float:
        # five days 20 points down: a sustained shift (the CUSUM needs several days)
        dip = 20.0 if d in (agent, developer) and (TODAY - day).days < 5 else 0.0
        return float(rng.normal(85, 1) - dip)

    devices = {
        d: DeviceInfo(
            d, info.hostname, info.site, "contact_centre_agent" if d == agent else "developer"
        )
        for d, info in infos().items()
    }
    inputs = DetectionInputs(AS_OF, devices, rows(score_of=score), [], [], [])
    inputs.min_score_drop = {"contact_centre_agent": 15.0, "developer": 30.0}
    found = device_shifts(inputs, DetectionSettings())
    # the same 20-point drop: news for the agent's persona, not for the developer's
    assert [c.scope_key for c in found] == [str(agent)]
    assert found[0].evidence["min_drop"] == 15.0
    # a persona without its own bar uses the default (25): neither is flagged
    inputs.min_score_drop = {}
    assert device_shifts(inputs, DetectionSettings()) == []


def test_a_healthy_noisy_fleet_raises_nothing() -> None:
    rng = np.random.default_rng(4)
    # every device crashes in teams now and then, at the same rate before and after the
    # update that half of them took 30 hours ago
    crashes = []
    for i, d in enumerate(DEVICES):
        for h in sorted(rng.uniform(1, 10 * 24, rng.poisson(5)).tolist()):
            ts = AS_OF - timedelta(hours=h)
            updated = i < 20 and h < 30
            crashes.append(crash(d, ts, "2.0" if updated else "1.0"))
    crashes.sort(key=lambda e: e[2])
    inputs = DetectionInputs(
        AS_OF,
        infos({d: ("paris" if i % 3 else "nyc") for i, d in enumerate(DEVICES)}),
        rows(
            lambda d, day: {
                "boot": float(rng.normal(85, 10)),
                "probe_latency": float(rng.normal(90, 8)),
            },
            lambda d, day: float(np.clip(rng.normal(80, 12), 0, 100)),
        ),
        [update(d, AS_OF - timedelta(hours=30)) for d in DEVICES[:20]],
        crashes,
        presence(),
    )
    assert detect(inputs) == []


def test_severity_grows_with_population_and_effect() -> None:
    assert severity(3, 2.5, "app_version") == "low"
    assert severity(8, 2.5, "app_version") == "medium"
    assert severity(25, 2.5, "app_version") == "high"
    assert severity(8, 12.0, "app_version") == "critical"
    assert severity(1, 5.0, "device") == "medium"


def test_a_filling_disk_is_reported_before_it_is_full_and_a_full_steady_one_is_not() -> None:
    filling, steady = DEVICES[3], DEVICES[4]
    measures: dict[tuple[uuid.UUID, date], dict[str, Any]] = {}
    for k, day in enumerate(days(10)):
        measures[filling, day] = {"disk_percent_max": 60.0 + max(0, k - 2) * 4.5}  # 60 -> 91.5
        measures[steady, day] = {"disk_percent_max": 95.0}
    inputs = DetectionInputs(AS_OF, infos(), rows(), [], [], [], measures=measures)
    found = disk_filling(inputs, DetectionSettings())
    assert [c.scope_key for c in found] == [str(filling)]
    alert = found[0]
    assert alert.metric == "disk_percent" and alert.scope == "device"
    assert alert.effect_size == pytest.approx(4.5)
    assert alert.onset == datetime.combine(days(10)[0], datetime.min.time(), UTC)
    assert "full in about 2 days" in alert.title


def test_a_one_device_alert_names_only_a_change_too_rare_to_be_a_cohort() -> None:
    filling = DEVICES[3]
    measures = {
        (filling, day): {"disk_percent_max": 60.0 + max(0, k - 2) * 4.5}
        for k, day in enumerate(days(10))
    }
    onset = datetime.combine(days(10)[0], datetime.min.time(), UTC)
    before = onset - timedelta(days=1)
    # A browser update that 30 devices took the same week, the filling one among them.
    fleet_wide = [update(d, before, "chrome.exe", "131.0") for d in DEVICES[:30]]
    # A backup agent only the filling device and one other took.
    rare = [update(d, before + timedelta(hours=2), "backupd.exe", "9.1") for d in DEVICES[3:5]]

    def blamed(changes: list[Any]) -> Any:
        inputs = DetectionInputs(AS_OF, infos(), rows(), changes, [], [], measures=measures)
        (alert,) = disk_filling(inputs, DetectionSettings())
        return alert.suspected_change

    # The 29 other adopters of the browser update are fine: a cohort test judges it on all
    # of them, so one device's trouble is not pinned on it.
    assert blamed(fleet_wide) is None
    rare_one = blamed(fleet_wide + rare)
    assert rare_one is not None
    named = (rare_one["name"], rare_one["version"], rare_one["adopters"])
    assert named == ("backupd.exe", "9.1", 2)
