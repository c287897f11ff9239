"""Injected incidents: each kind changes the right events of the right devices from its onset
on and nothing else, its ground truth matches the events, tickets follow the hits, the plan
is realistic and deterministic, and ``dexscope simulate --incidents`` writes it all."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.ingest.schemas import BATCH
from scoring.incidents import (
    KINDS,
    TICKET_AFTER_HITS,
    AppVersionCrash,
    BootPatch,
    DiskFilling,
    DiskUsage,
    DriverSystemCrash,
    MemoryLeakHangs,
    SaasSlowSite,
    auto_incident_count,
    default_incidents,
    merge_incidents,
)
from scoring.simulate import (
    TICKET_FIELDS,
    TICKET_OUTCOME_FIELDS,
    DeviceOutput,
    Injector,
    SimConfig,
    batch_json,
    make_devices,
    simulate_fleet,
)
from tests.support import run_cli

END = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CONFIG = SimConfig(devices=80, days=21, seed=11, end=END)
DAY = 86400.0


def _t(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _strip(events: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "event_id" and k not in drop} for e in events]


@pytest.fixture(scope="module")
def healthy() -> dict[str, DeviceOutput]:
    return {o.device.hostname: o for o in simulate_fleet(CONFIG)}


def _run(*injectors: Injector) -> tuple[dict[str, DeviceOutput], dict[str, Any]]:
    outputs = {o.device.hostname: o for o in simulate_fleet(CONFIG, injectors)}
    merged = merge_incidents(e for i in injectors for e in i.incidents())
    assert len(merged) == 1
    return outputs, merged[0]


def _check_only_affected_from_onset(
    healthy: dict[str, DeviceOutput],
    injected: dict[str, DeviceOutput],
    truth: dict[str, Any],
    drop: tuple[str, ...] = (),
) -> dict[str, float]:
    """Unaffected devices are untouched; affected ones only from their own ``since`` (or
    the change behind it, just before) on. Returns each affected device's cut."""
    since = {d["hostname"]: _t(d["since"]) for d in truth["affected_devices"]}
    assert since, "the incident hit no device"
    assert truth["onset"] == min(d["since"] for d in truth["affected_devices"])
    assert _t(truth["onset"]) >= CONFIG.start_epoch + 7 * DAY
    cuts = {}
    for host, out in injected.items():
        base = _strip(healthy[host].events, drop)
        mine = _strip(out.events, drop)
        if host not in since:
            assert mine == base, host
            continue
        changes = [_t(e["ts"]) for e in out.events if e["type"] == "software_change"]
        changes = [t for t in changes if t >= since[host] - 3600]
        cut = min([since[host], *changes])
        cuts[host] = cut
        before = [e for e, o in zip(mine, out.events, strict=True) if _t(o["ts"]) < cut]
        base_before = [
            e for e, o in zip(base, healthy[host].events, strict=True) if _t(o["ts"]) < cut
        ]
        assert before == base_before, host
        assert mine != base, host
    return cuts


def _windows_version(healthy: dict[str, DeviceOutput]) -> str:
    versions = Counter(o.device.os_version for o in healthy.values() if o.device.os == "windows")
    return versions.most_common(1)[0][0]


def test_boot_patch_slows_the_boots_of_patched_devices(healthy: dict[str, DeviceOutput]) -> None:
    version = _windows_version(healthy)
    patch = BootPatch(
        id="INC-T1",
        number=1,
        start=CONFIG.start_epoch + 9 * DAY,
        os_version=version,
        kb="KB5046633",
        build_from=f"{version}.4460",
        build_to=f"{version}.4541",
        rollout_days=2.0,
        slowdown=0.8,
    )
    injected, truth = _run(patch)
    assert truth["kind"] == "boot_patch" and truth["metric"] == "boot"
    assert (truth["scope"], truth["scope_key"]) == ("os_version", version)
    assert truth["change"]["change"] == "os_patch" and truth["change"]["kb"] == "KB5046633"
    _check_only_affected_from_onset(healthy, injected, truth)
    patched = {
        h
        for h, o in injected.items()
        if any(e.get("kb") == "KB5046633" for e in o.events if e["type"] == "software_change")
    }
    assert patched == {d["hostname"] for d in truth["affected_devices"]}
    for d in truth["affected_devices"]:
        out = injected[d["hostname"]]
        assert out.device.os_version == version
        base = {e["ts"]: e for e in healthy[d["hostname"]].events if e["type"] == "boot"}
        ratios = [
            e["boot_duration_s"] / base[e["ts"]]["boot_duration_s"]
            for e in out.events
            if e["type"] == "boot" and _t(e["ts"]) >= _t(d["since"])
        ]
        assert ratios and min(ratios) > 1.3 and max(ratios) < 3.0
        for e in out.events:
            if e["type"] == "boot":
                assert _t(e["booted_at"]) < _t(e["ts"])
        patch_ts = next(_t(e["ts"]) for e in out.events if e.get("kb") == "KB5046633")
        assert patch_ts < _t(d["since"])


def _app_build_check(
    healthy: dict[str, DeviceOutput], injected: dict[str, DeviceOutput], truth: dict[str, Any]
) -> None:
    version = truth["app_version"]
    with_version = {
        h for h, o in injected.items() if any(e.get("app_version") == version for e in o.events)
    }
    updated = {
        h
        for h, o in injected.items()
        if any(e.get("version_to") == version for e in o.events if e["type"] == "software_change")
    }
    assert with_version == updated == {d["hostname"] for d in truth["affected_devices"]}
    assert truth["change"] == {
        "type": "software_change",
        "change": "update",
        "name": truth["app_name"],
        "version_to": version,
    }
    for d in truth["affected_devices"]:
        out = injected[d["hostname"]]
        assert out.device.os == "windows"
        for e in out.events:
            if e.get("app_name") == truth["app_name"] and "app_version" in e:
                assert (e["app_version"] == version) == (_t(e["ts"]) >= _t(d["since"]))
    # a staged rollout: devices update over several days
    sinces = sorted(_t(d["since"]) for d in truth["affected_devices"])
    assert sinces[-1] - sinces[0] > DAY


def test_app_version_crash(healthy: dict[str, DeviceOutput]) -> None:
    crash = AppVersionCrash(
        id="INC-T2",
        number=2,
        start=CONFIG.start_epoch + 8 * DAY,
        app="teams",
        version_to="24295.605.3225.8900",
        rollout_days=4.0,
        multiplier=12.0,
        faulting_module="msedgewebview2.dll",
    )
    injected, truth = _run(crash)
    assert truth["scope"] == "app_version" and truth["metric"] == "app_crash_rate"
    _check_only_affected_from_onset(healthy, injected, truth)
    _app_build_check(healthy, injected, truth)
    new = sum(
        e["type"] == "app_crash" and e["app_version"] == truth["app_version"]
        for o in injected.values()
        for e in o.events
    )
    old = sum(
        e["type"] == "app_crash" and e["app_name"] == truth["app_name"]
        for o in healthy.values()
        for e in o.events
    )
    assert new > 3 * max(1, old)
    modules = Counter(
        e["faulting_module"]
        for o in injected.values()
        for e in o.events
        if e["type"] == "app_crash" and e["app_version"] == truth["app_version"]
    )
    assert modules.most_common(1)[0][0] == "msedgewebview2.dll"


def test_memory_leak_hangs_grow_through_the_day(healthy: dict[str, DeviceOutput]) -> None:
    leak = MemoryLeakHangs(
        id="INC-T3",
        number=3,
        start=CONFIG.start_epoch + 8 * DAY,
        app="outlook",
        version_to="16.0.18129.20150",
        rollout_days=3.0,
        peak_multiplier=15.0,
        leak_mb_per_h=300.0,
    )
    injected, truth = _run(leak)
    assert truth["metric"] == "app_hang_rate"
    _check_only_affected_from_onset(healthy, injected, truth)
    _app_build_check(healthy, injected, truth)
    early = late = 0
    rss_growth = []
    for d in truth["affected_devices"]:
        out = injected[d["hostname"]]
        boots = sorted(_t(e["ts"]) for e in out.events if e["type"] == "boot")
        for e in out.events:
            t = _t(e["ts"])
            if t < _t(d["since"]):
                continue
            up = (t - max(b for b in boots if b <= t)) / 3600
            if e["type"] == "app_hang" and e["app_version"] == truth["app_version"]:
                early += up < 4
                late += up >= 4
            if e["type"] == "app_resource" and e["app_name"] == truth["app_name"]:
                rss_growth.append((up, e["rss_mb"]))
    assert late > 2 * max(1, early)
    low = statistics.median(r for u, r in rss_growth if u < 2)
    high = statistics.median(r for u, r in rss_growth if u > 6)
    assert high > low + 1000


def test_saas_slow_for_one_site_only(healthy: dict[str, DeviceOutput]) -> None:
    tz = ZoneInfo("Europe/London")
    day = (CONFIG.start + timedelta(days=10)).astimezone(tz).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    onset = datetime(day.year, day.month, day.day, 9, 0, tzinfo=tz).timestamp()
    slow = SaasSlowSite(
        id="INC-T4",
        number=4,
        start=onset,
        site="London",
        target="intranet.contoso.example",
        until=onset + 3 * DAY,
        slowdown=5.0,
        failure_rate=0.08,
    )
    injected, truth = _run(slow)
    assert truth["change"] is None and truth["cause"] == "network"
    assert (truth["scope"], truth["scope_key"]) == ("site", "London")
    assert _t(truth["end"]) == pytest.approx(onset + 3 * DAY, abs=0.01)
    _check_only_affected_from_onset(healthy, injected, truth)
    affected = {d["hostname"] for d in truth["affected_devices"]}
    for host, out in injected.items():
        in_window = [
            (e, b)
            for e, b in zip(out.events, healthy[host].events, strict=True)
            if e["type"] == "probe"
            and e["target"] == "intranet.contoso.example"
            and onset <= _t(e["ts"]) < onset + 3 * DAY
        ]
        assert bool(in_window and out.device.site == "London") == (host in affected)
        if host in affected:
            assert out.device.site == "London"
    pairs = [
        (e, b)
        for h in affected
        for e, b in zip(injected[h].events, healthy[h].events, strict=True)
        if e["type"] == "probe"
        and e["target"] == "intranet.contoso.example"
        and onset <= _t(e["ts"]) < onset + 3 * DAY
    ]
    ok = [(e, b) for e, b in pairs if e["ok"] and b["ok"]]
    assert statistics.median(e["total_s"] / b["total_s"] for e, b in ok) > 2.0
    failures = sum(not e["ok"] for e, _b in pairs) / len(pairs)
    assert 0.02 < failures < 0.2


def test_driver_update_then_blue_screens(healthy: dict[str, DeviceOutput]) -> None:
    driver = DriverSystemCrash(
        id="INC-T5",
        number=5,
        start=CONFIG.start_epoch + 8 * DAY,
        hardware_class="mid",
        driver="Intel(R) Iris(R) Xe Graphics",
        driver_file="igdkmd64.sys",
        version_from="31.0.101.5590",
        version_to="31.0.101.5592",
        publisher="Intel Corporation",
        bugcheck_code="0x00000116",
        rate_per_h=0.02,
        rollout_days=3.0,
    )
    injected, truth = _run(driver)
    assert (truth["scope"], truth["scope_key"], truth["metric"]) == (
        "hardware_class",
        "mid",
        "system_crash_rate",
    )
    _check_only_affected_from_onset(healthy, injected, truth)
    drivers = {
        h
        for h, o in injected.items()
        if any(e["type"] == "software_change" and e["change"] == "driver" for e in o.events)
    }
    assert drivers == {d["hostname"] for d in truth["affected_devices"]}
    crashes = 0
    for h in drivers:
        out = injected[h]
        assert out.device.hardware_class == "mid" and out.device.os == "windows"
        events = out.events
        for i, e in enumerate(events):
            if e["type"] == "system_crash" and e.get("bugcheck_code") == "0x00000116":
                crashes += 1
                assert "igdkmd64.sys" in e["detail"]
                reboot = [x for x in events[i:] if x["type"] == "boot"]
                if reboot:
                    assert _t(reboot[0]["booted_at"]) - _t(e["ts"]) < 60
    base = sum(e["type"] == "system_crash" for o in healthy.values() for e in o.events)
    assert crashes > 5 * max(1, base)


def test_disk_filling_rises_day_by_day(healthy: dict[str, DeviceOutput]) -> None:
    device = next(o.device for o in healthy.values() if o.device.joins_at == 0)
    fill = DiskFilling(
        id="INC-T6",
        number=6,
        start=CONFIG.start_epoch + 9 * DAY,
        device_index=device.index,
        hostname=device.hostname,
        fill_days=6.0,
        full_percent=98.5,
    )
    injectors: list[Injector] = [DiskUsage(), fill]
    outputs = {o.device.hostname: o for o in simulate_fleet(CONFIG, injectors)}
    (truth,) = merge_incidents(e for i in injectors for e in i.incidents())
    assert truth["affected_devices"] == [
        {
            "hostname": device.hostname,
            "device_id": device.device_id,
            "since": truth["onset"],
        }
    ]
    assert truth["change"] is None and truth["metric"] == "io_pressure"
    _check_only_affected_from_onset(healthy, outputs, truth, drop=("disk_percent",))
    # every device reports its disk; the healthy ones stay steady
    for host, out in outputs.items():
        disk = [e["disk_percent"] for e in out.events if e["type"] == "resource_sample"]
        assert disk and all(0 < v < 100 for v in disk)
        if host != device.hostname:
            assert max(disk) - min(disk) < 5
    samples = [e for e in outputs[device.hostname].events if e["type"] == "resource_sample"]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for e in samples:
        if _t(e["ts"]) >= fill.start:
            by_day.setdefault(e["ts"][:10], []).append(e)
    peaks = [max(e["disk_percent"] for e in day) for day in by_day.values()]
    assert peaks == sorted(peaks) and peaks[-1] > 95
    before = [e["io_pressure_s"] for e in samples if _t(e["ts"]) < fill.start]
    full = [e["io_pressure_s"] for e in samples if e["disk_percent"] > 95]
    assert statistics.mean(full) > 4 * statistics.mean(before)


@pytest.fixture(scope="module")
def planned() -> tuple[SimConfig, list[Injector], list[DeviceOutput]]:
    config = SimConfig(devices=120, days=30, seed=4, end=END)
    injectors = default_incidents(config, config.seed, count=12)
    return config, injectors, list(simulate_fleet(config, injectors))


def _failures_met(
    incident: dict[str, Any], events: list[dict[str, Any]], since: float, until: float
) -> int:
    """How often the user met the incident's failure between ``since`` and ``until``."""
    window = [e for e in events if since <= _t(e["ts"]) < until]
    kind: str = incident["kind"]
    version: str = incident.get("app_version", "")
    effect: dict[str, str] = incident["effect"]

    def met(e: dict[str, Any]) -> bool:
        if kind == "boot_patch":
            return bool(e["type"] == "boot")
        if kind == "app_version_crash":
            return bool(
                e["type"] == "app_crash"
                and e["app_version"] == version
                and e["faulting_module"] == effect["faulting_module"]
            )
        if kind == "memory_leak_hangs":
            return bool(e["type"] == "app_hang" and e["app_version"] == version)
        if kind == "saas_slow_site":
            return bool(e["type"] == "probe" and e["target"] == incident["target"])
        if kind == "driver_system_crash":
            return bool(
                e["type"] == "system_crash"
                and e.get("bugcheck_code") == effect.get("bugcheck_code")
            )
        return bool(e.get("disk_percent", 0) >= 92)

    return sum(met(e) for e in window)  # the window holds the boot or page at ``since``


def test_tickets_come_from_hit_users_in_their_working_hours(
    planned: tuple[SimConfig, list[Injector], list[DeviceOutput]],
) -> None:
    config, injectors, outputs = planned
    truth = {e["id"]: e for e in merge_incidents(x for i in injectors for x in i.incidents())}
    assert {e["kind"] for e in truth.values()} == set(KINDS)
    raised: Counter[str] = Counter()
    background = 0
    for out in outputs:
        boots = sorted(_t(e["ts"]) for e in out.events if e["type"] == "boot")
        samples = sorted(_t(e["ts"]) for e in out.events if e["type"] == "resource_sample")
        for ticket in out.tickets:
            assert list(ticket) == list(TICKET_FIELDS)
            if not ticket["incident_id"]:
                background += 1
                continue
            raised[ticket["incident_id"]] += 1
            incident = truth[ticket["incident_id"]]
            hit = {d["hostname"]: d for d in incident["affected_devices"]}
            assert out.device.hostname in hit
            opened = _t(ticket["opened_at"])
            assert _t(hit[out.device.hostname]["since"]) <= opened < config.end_epoch
            following = [b for b in boots if b > opened]
            next_boot = following[0] if following else float("inf")
            assert any(b <= opened for b in boots), "before any boot"
            assert any(opened <= s < next_boot for s in samples), "outside working time"
            assert ticket["user"] == out.device.user
            met = _failures_met(incident, out.events, _t(hit[out.device.hostname]["since"]), opened)
            assert met >= TICKET_AFTER_HITS[incident["kind"]], (incident["kind"], met)
    assert sum(raised.values()) > 0 and background > 0
    assert raised == Counter({k: v["tickets"] for k, v in truth.items() if v["tickets"]})
    for incident in truth.values():
        assert incident["tickets"] <= max(2, len(incident["affected_devices"]) // 2)


def test_injected_batches_validate(
    planned: tuple[SimConfig, list[Injector], list[DeviceOutput]],
) -> None:
    _config, injectors, outputs = planned
    truth = merge_incidents(x for i in injectors for x in i.incidents())
    kinds: dict[str, set[str]] = {}
    for incident in truth:
        for d in incident["affected_devices"]:
            kinds.setdefault(d["hostname"], set()).add(incident["kind"])
    checked = [o for o in outputs if o.device.hostname in kinds][::3]
    checked += [
        o
        for o in outputs
        if o.device.hostname in kinds and "disk_filling" in kinds[o.device.hostname]
    ]
    assert {k for o in checked for k in kinds[o.device.hostname]} == set(KINDS)
    for out in checked:
        for batch in out.batches:
            BATCH.validate_python(json.loads(json.dumps(batch)))
            assert batch_json(batch) == json.dumps(batch, separators=(",", ":"))


def test_same_plan_same_bytes_and_chunks_merge_to_the_whole() -> None:
    config = SimConfig(devices=30, days=14, seed=9, end=END)

    def run(indices: list[int]) -> tuple[list[Any], list[dict[str, Any]]]:
        from scoring.simulate import fleet_releases, make_device, make_sites, simulate_device

        injectors = default_incidents(config, config.seed, count=6)
        sites, releases = make_sites(config), fleet_releases(config)
        outs = [
            simulate_device(config, make_device(config, i), sites, releases, injectors)
            for i in indices
        ]
        entries = [e for inj in injectors for e in inj.incidents()]
        return [[o.batches, o.tickets] for o in outs], entries

    whole, entries = run(list(range(30)))
    again, entries_again = run(list(range(30)))
    assert json.dumps(whole) == json.dumps(again) and entries == entries_again
    first, part1 = run(list(range(13)))
    second, part2 = run(list(range(13, 30)))
    assert json.dumps(first + second) == json.dumps(whole)
    merged = merge_incidents(entries)
    assert merged and merge_incidents(part1 + part2) == merged


def test_the_default_plan_for_a_big_fleet() -> None:
    config = SimConfig(devices=2000, days=60, seed=1, end=END)
    plan = default_incidents(config, config.seed)
    assert isinstance(plan[0], DiskUsage)
    incidents = [i for i in plan if not isinstance(i, DiskUsage)]
    assert len(incidents) == auto_incident_count(config) == round(2000 * 60 / 4500)
    kinds = Counter(getattr(i, "kind", "") for i in incidents)
    assert set(kinds) == set(KINDS)
    scopes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for incident in incidents:
        start = getattr(incident, "start", 0.0)
        assert start >= config.start_epoch + 7 * DAY
        assert start <= config.end_epoch - 3 * DAY + DAY
        (entry,) = incident.incidents()
        key = (entry["scope"], entry["scope_key"])
        if entry["scope"] == "app_version":
            key = ("app", entry["app_name"])
        end = _t(entry["end"]) if entry["end"] else float("inf")
        for a, b in scopes.get(key, []):
            assert end <= a or start >= b, key
        scopes.setdefault(key, []).append((start, end))
    # small fleets: none by default, so the demo stays healthy
    assert default_incidents(SimConfig(devices=25, days=7, seed=1, end=END), 1) == []
    assert auto_incident_count(SimConfig(devices=19, days=30, seed=1, end=END)) == 0
    assert len(make_devices(SimConfig(devices=3, days=30, seed=1, end=END))) == 3


# --- the command -----------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_cli_writes_incidents_and_tickets(tmp_path: Path) -> None:
    args = ["simulate", "--devices", "30", "--days", "14", "--seed", "3"]
    args += ["--end", "2026-11-25T10:00:00Z", "--incidents", "6"]
    result = run_cli(*args, "--out", str(tmp_path / "a"), "--workers", "1", "--json")
    summary = json.loads(result.stdout)
    out = tmp_path / "a"
    incidents = json.loads((out / "incidents.json").read_text())
    assert summary["incidents"] == len(incidents) >= 4
    devices = {d["hostname"]: d for d in json.loads((out / "devices.json").read_text())}
    for incident in incidents:
        assert {
            "id",
            "kind",
            "scope",
            "scope_key",
            "metric",
            "onset",
            "end",
            "affected_devices",
            "change",
            "effect",
        } <= set(incident)
        for device in incident["affected_devices"]:
            assert devices[device["hostname"]]["id"] == device["device_id"]
    with (out / "tickets.csv").open() as handle:
        assert next(csv.reader(handle)) == [*TICKET_FIELDS, *TICKET_OUTCOME_FIELDS]
    with (out / "tickets.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["external_id"] for r in rows] == [f"SIM-{n:06d}" for n in range(1, len(rows) + 1)]
    ids = {i["id"] for i in incidents}
    assert {r["incident_id"] for r in rows if r["incident_id"]} <= ids
    assert sum(i["tickets"] for i in incidents) == sum(bool(r["incident_id"]) for r in rows)
    run_cli(*args, "--out", str(tmp_path / "b"), "--workers", "2")
    assert _files(out) == _files(tmp_path / "b")


def test_cli_incidents_option(tmp_path: Path) -> None:
    bad = run_cli("simulate", "--out", str(tmp_path / "o"), "--incidents", "lots", check=False)
    assert bad.returncode == 2 and "--incidents" in bad.stderr
    short = run_cli(
        "simulate", "--out", str(tmp_path / "o"), "--days", "3", "--incidents", "2", check=False
    )
    assert short.returncode == 2 and "9 days" in short.stderr
    none = ["simulate", "--devices", "20", "--days", "14", "--seed", "2"]
    none += ["--end", "2026-11-25T10:00:00Z", "--incidents", "none", "--out"]
    run_cli(*none, str(tmp_path / "n"))
    assert json.loads((tmp_path / "n" / "incidents.json").read_text()) == []
