"""The fleet simulator: determinism, wire validity, sane distributions, and the command."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from collector.ingest.schemas import BATCH
from scoring.simulate import (
    PERSONAS,
    TICKET_FIELDS,
    TICKET_OUTCOME_FIELDS,
    DeviceOutput,
    SimConfig,
    SimDevice,
    batch_json,
    make_devices,
    make_sites,
    simulate_fleet,
)
from tests.support import run_cli

END = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _fleet(devices: int, days: int, seed: int = 7, **kw: Any) -> list[DeviceOutput]:
    return list(simulate_fleet(SimConfig(devices=devices, days=days, seed=seed, end=END), **kw))


@pytest.fixture(scope="module")
def fleet() -> list[DeviceOutput]:
    return _fleet(40, 15)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_same_seed_same_bytes_other_seed_other_fleet() -> None:
    def dump(outputs: list[DeviceOutput]) -> str:
        return json.dumps(
            [[o.ground_truth(), o.batches, o.tickets] for o in outputs], sort_keys=True
        )

    first = dump(_fleet(6, 5, seed=3))
    assert first == dump(_fleet(6, 5, seed=3))
    assert first != dump(_fleet(6, 5, seed=4))


def test_every_batch_validates_against_the_strict_wire_schema(fleet: list[DeviceOutput]) -> None:
    types: Counter[str] = Counter()
    for output in fleet:
        for batch in output.batches:
            parsed = BATCH.validate_python(json.loads(json.dumps(batch)))
            assert len(parsed["events"]) <= 500
            types.update(e["type"] for e in parsed["events"])
    for expected in (
        "boot",
        "logon",
        "resource_sample",
        "app_resource",
        "app_hang",
        "software_change",
        "probe",
        "agent_health",
    ):
        assert types[expected] > 0, expected


def test_batch_json_is_plain_compact_json(fleet: list[DeviceOutput]) -> None:
    for output in fleet[:10]:
        for batch in output.batches:
            assert batch_json(batch) == json.dumps(batch, separators=(",", ":"))
    batch = fleet[0].batches[0]
    samples = [e for e in batch["events"] if e["type"] == "resource_sample"][:3]
    assert samples
    odd = {**batch, "events": [{**e, "cpu_percent": np.float64(1.5)} for e in samples]}
    assert json.loads(batch_json(odd)) == json.loads(json.dumps(odd))


def test_ids_are_unique_and_batches_are_ordered(fleet: list[DeviceOutput]) -> None:
    event_ids: set[str] = set()
    batch_ids: set[str] = set()
    for output in fleet:
        assert sum(len(b["events"]) for b in output.batches) == len(output.events)
        times = [_parse(e["ts"]) for e in output.events]
        assert times == sorted(times)
        for batch in output.batches:
            assert batch["device_id"] == output.device.device_id
            assert batch["schema_version"] == 1
            assert _parse(batch["sent_at"]) >= _parse(batch["events"][-1]["ts"])
            assert _parse(batch["sent_at"]) <= END
            batch_ids.add(batch["batch_id"])
        event_ids.update(e["event_id"] for e in output.events)
    assert len(event_ids) == sum(len(o.events) for o in fleet)
    assert len(batch_ids) == sum(len(o.batches) for o in fleet)


def test_no_event_outside_the_period(fleet: list[DeviceOutput]) -> None:
    config = SimConfig(devices=40, days=15, seed=7, end=END)
    for output in fleet:
        for event in output.events:
            assert config.start <= _parse(event["ts"]) < END
            if "booted_at" in event:
                assert config.start <= _parse(event["booted_at"]) <= _parse(event["ts"])


def test_boots_only_on_working_days_in_local_time(fleet: list[DeviceOutput]) -> None:
    sites = {s.name: s for s in make_sites(SimConfig(devices=40, days=15, seed=7, end=END))}
    assert all(len(s.holidays) == 1 for s in sites.values())  # days // 15
    for output in fleet:
        device = output.device
        tz = ZoneInfo(device.timezone)
        working = set(output.working_days)
        boot_days = [
            _parse(e["booted_at"]).astimezone(tz).date()
            for e in output.events
            if e["type"] == "boot"
        ]
        assert len(boot_days) == len(set(boot_days))  # one boot a day
        for day in boot_days:
            assert day.weekday() < 5
            assert day not in sites[device.site].holidays
            assert day not in output.days_off
            assert day in working
        # every working day fully inside the period has its boot
        assert len(boot_days) >= len(working) - 2
        for event in output.events:
            local = _parse(event["ts"]).astimezone(tz)
            assert local.date() in working, (event["type"], local)


def test_sign_ins_and_boots_are_plausible(fleet: list[DeviceOutput]) -> None:
    logons = [e for o in fleet for e in o.events if e["type"] == "logon"]
    assert all(1.0 <= e["logon_duration_s"] <= 600.0 for e in logons)
    assert 5 <= statistics.median(e["logon_duration_s"] for e in logons) <= 40
    boots = [e for o in fleet for e in o.events if e["type"] == "boot"]
    cold = [e["boot_duration_s"] for e in boots if e["boot_kind"] == "cold"]
    assert 10 <= statistics.median(cold) <= 90
    assert {e["boot_kind"] for e in boots} >= {"cold", "resume"}


def test_resource_samples_every_five_minutes_and_rare_problems(
    fleet: list[DeviceOutput],
) -> None:
    hours = 0.0
    hangs = crashes = 0
    for output in fleet:
        samples = [_parse(e["ts"]) for e in output.events if e["type"] == "resource_sample"]
        gaps = Counter(round((b - a).total_seconds()) for a, b in itertools.pairwise(samples))
        assert gaps.most_common(1)[0][0] == 300
        hours += len(samples) / 12
        hangs += sum(e["type"] == "app_hang" for e in output.events)
        crashes += sum(e["type"] == "app_crash" for e in output.events)
    assert 0 < hangs / hours < 0.1
    assert crashes / hours < 0.02


def test_app_versions_follow_software_updates(fleet: list[DeviceOutput]) -> None:
    checked = 0
    for output in fleet:
        for change in (e for e in output.events if e["type"] == "software_change"):
            assert change["version_from"] != change["version_to"]
            at = _parse(change["ts"])
            for e in output.events:
                if e["type"] == "app_resource" and e["app_name"] == change["name"]:
                    before = _parse(e["ts"]) < at
                    want = change["version_from"] if before else change["version_to"]
                    assert e["app_version"] == want
                    checked += 1
    assert checked > 0


@pytest.fixture(scope="module")
def big_fleet() -> list[DeviceOutput]:
    return _fleet(200, 21, seed=11)


def test_first_logon_only_on_a_new_devices_first_day(big_fleet: list[DeviceOutput]) -> None:
    new = 0
    for output in big_fleet:
        firsts = [e for e in output.events if e["type"] == "logon" and e["first_logon"]]
        if output.device.joins_at == 0:
            assert firsts == []
            continue
        new += 1
        assert len(firsts) == 1
        logons = [e for e in output.events if e["type"] == "logon"]
        assert logons[0] is firsts[0]
        day = _parse(firsts[0]["ts"]).astimezone(ZoneInfo(output.device.timezone)).date()
        assert day == output.working_days[0]
        tz = ZoneInfo(output.device.timezone)
        assert all(_parse(e["ts"]).astimezone(tz).date() >= day for e in output.events)
    assert new > 0


def test_surveys_follow_the_pulse_contract(big_fleet: list[DeviceOutput]) -> None:
    outputs = big_fleet
    answers = [e for o in outputs for e in o.events if e["type"] == "survey_response"]
    weeks = 200 * 3
    assert 0.02 * weeks <= len(answers) <= 0.09 * weeks
    outcomes = Counter(e["outcome"] for e in answers)
    assert outcomes["answered"] > len(answers) / 2
    assert set(outcomes) <= {"answered", "dismissed", "expired"}
    for e in answers:
        assert e["campaign_id"] == "sim-pulse"
        assert e["trigger"] == "pulse" and e["question_type"] == "stars"
        assert ("value" in e) == (e["outcome"] == "answered")
        if "value" in e:
            assert e["value"] in (1.0, 2.0, 3.0, 4.0, 5.0)


def test_survey_answers_follow_experience() -> None:
    config = SimConfig(devices=150, days=14, seed=21, end=END, pulse_response=1.0)
    stars: dict[str, list[float]] = {"low": [], "mid": [], "high": []}
    for output in simulate_fleet(config):
        stars[output.device.hardware_class].extend(
            e["value"] for e in output.events if e["type"] == "survey_response" and "value" in e
        )
    assert all(len(v) > 10 for v in stars.values()), {k: len(v) for k, v in stars.items()}
    means = {k: statistics.mean(v) for k, v in stars.items()}
    # slower boots and more hangs on low-end hardware: worse answers, with noise
    assert means["low"] + 0.3 < means["high"], means
    assert len(set(stars["mid"])) >= 3


def test_devices_have_personas_sites_and_portfolios() -> None:
    devices = make_devices(SimConfig(devices=300, days=7, seed=5, end=END))
    personas = Counter(d.persona for d in devices)
    assert set(personas) == set(PERSONAS)
    oses = Counter(d.os for d in devices)
    assert oses["windows"] > 0.7 * len(devices)
    assert oses["macos"] > 0
    assert len({d.site for d in devices}) == 4
    assert len({d.hostname for d in devices}) == 300
    assert {d.hardware_class for d in devices} == {"low", "mid", "high"}
    for device in devices:
        assert device.apps and abs(sum(a[3] for a in device.apps) - 1.0) < 0.01
        request = device.enroll_request("tok", "0.1.0")
        assert request["persona_hint"] == device.persona
        assert request["tags"] == {"site": device.site}
    # the devices do not depend on the period
    again = make_devices(
        SimConfig(devices=300, days=30, seed=5, end=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert again == devices


class _AddOne:
    """A test injector: one extra system crash in the middle of each device's events."""

    def apply(
        self,
        device: SimDevice,
        events: list[dict[str, Any]],
        rng: np.random.Generator,
        config: SimConfig,
    ) -> list[dict[str, Any]]:
        middle = sorted(e["ts"] for e in events)[len(events) // 2]
        crash = {
            "type": "system_crash",
            "ts": middle + 1.0,
            "crash_kind": "bugcheck",
            "source": "injected",
        }
        return [*events, crash]

    def incidents(self) -> list[dict[str, Any]]:
        return [{"kind": "test"}]


def test_injectors_can_add_events() -> None:
    outputs = _fleet(3, 5, injectors=[_AddOne()])
    for output in outputs:
        injected = [e for e in output.events if e.get("source") == "injected"]
        assert len(injected) == 1
        assert "event_id" in injected[0]
        for batch in output.batches:
            BATCH.validate_python(json.loads(json.dumps(batch)))


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        SimConfig(devices=0, days=1, seed=1, end=END)
    with pytest.raises(ValueError):
        SimConfig(devices=1, days=0, seed=1, end=END)
    with pytest.raises(ValueError):
        SimConfig(devices=1, days=1, seed=1, end=datetime(2026, 1, 1))


# --- the command -----------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_cli_writes_the_four_outputs_deterministically(tmp_path: Path) -> None:
    args = ["simulate", "--devices", "5", "--days", "3", "--seed", "1"]
    end = ["--end", "2026-11-25T10:00:00Z"]
    result = run_cli(*args, "--out", str(tmp_path / "a"), *end, "--json")
    summary = json.loads(result.stdout)
    out = tmp_path / "a"
    batches = sorted((out / "batches").glob("*.json.gz"))
    assert batches and len(batches) == summary["batches"]
    devices = json.loads((out / "devices.json").read_text())
    assert len(devices) == 5 and {"id", "hostname", "persona", "site", "apps"} <= set(devices[0])
    assert json.loads((out / "incidents.json").read_text()) == []
    with (out / "tickets.csv").open() as handle:
        assert next(csv.reader(handle)) == [*TICKET_FIELDS, *TICKET_OUTCOME_FIELDS]
    events = 0
    for path in batches:
        batch = BATCH.validate_json(gzip.decompress(path.read_bytes()))
        events += len(batch["events"])
    assert events == summary["events"] == sum(d["events"] for d in devices)

    run_cli(*args, "--out", str(tmp_path / "b"), *end)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # worker processes (more than one chunk of devices) do not change a byte
    more = ["simulate", "--devices", "45", "--days", "1", "--seed", "2", *end]
    run_cli(*more, "--out", str(tmp_path / "w1"), "--workers", "1")
    run_cli(*more, "--out", str(tmp_path / "w2"), "--workers", "2")
    assert _files(tmp_path / "w1") == _files(tmp_path / "w2")
    run_cli(*args, "--out", str(tmp_path / "c"), *end, "--no-gzip")
    assert sorted((tmp_path / "c" / "batches").glob("*.json"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--devices", "0"], "--devices"),
        (["--days", "0"], "--days"),
        (["--end", "yesterday"], "--end"),
        (["--server", "http://127.0.0.1:9"], "--enroll-token"),
        (["--server", "ftp://x", "--enroll-token", "t"], "--server"),
    ],
)
def test_cli_rejects_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    monkeypatch.delenv("DEXSCOPE_ENROLL_TOKEN", raising=False)
    result = run_cli("simulate", "--out", str(tmp_path / "o"), *extra, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_cli_rejects_an_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli(
        "simulate", "--devices", "1", "--days", "1", "--out", str(blocker / "sub"), check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to"), lines


def test_cli_refuses_to_upload_a_period_the_collector_would_reject(tmp_path: Path) -> None:
    result = run_cli(
        "simulate",
        "--out",
        str(tmp_path / "o"),
        "--days",
        "40",
        "--server",
        "http://127.0.0.1:9",
        "--enroll-token",
        "t",
        check=False,
    )
    assert result.returncode == 2
    assert "35 days" in result.stderr


def test_cli_checks_the_period_against_a_collector_set_to_keep_older_events(
    tmp_path: Path,
) -> None:
    common = ["simulate", "--devices", "1", "--days", "40", "--incidents", "none"]
    target = ["--server", "http://127.0.0.1:9", "--enroll-token", "t", "--timeout", "2"]
    refused = run_cli(
        *common, "--out", str(tmp_path / "a"), *target, "--max-age-days", "39", check=False
    )
    assert refused.returncode == 2
    assert "more than 39 days ago" in refused.stderr
    # Allowed by a 45-day collector: the period passes the check and the upload is tried.
    tried = run_cli(
        *common, "--out", str(tmp_path / "b"), *target, "--max-age-days", "45", check=False
    )
    assert "days ago" not in tried.stderr
    assert "cannot reach the collector" in tried.stderr, tried.stderr
