"""The OS-neutral samplers' logic (cursors, pseudonyms, hang tracking, per-app summaries)
on a real spool, with the OS side injected as recorded values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigLayers
from agent.errors import AgentConfigError
from agent.platform import ProcessSample
from agent.platform.common import Harvest, HungApp, pseudonymise, stable_event_id
from agent.runner import SamplerRunner
from agent.samplers import SamplerContext, load_builtin_samplers
from agent.samplers.app_hang import AppHangSampler
from agent.samplers.app_resource import AppResourceSampler
from agent.samplers.logon import LogonSampler
from agent.samplers.logsource import LogSampler, source_mark
from agent.spool import Spool
from collector.ingest.schemas import EVENT

KEY = "ab" * 32


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool.db")
    yield spool
    spool.close()


def context(tmp_path: Path, spool: Spool) -> SamplerContext:
    return SamplerContext(tmp_path, spool.stats, SamplerRunner().take_stats, spool.mark)


def spooled(spool: Spool) -> list[dict[str, Any]]:
    rows = spool._db.execute("SELECT body FROM events ORDER BY seq").fetchall()
    events = [json.loads(r[0]) for r in rows]
    for event in events:
        EVENT.validate_python(event)
    return events


class Recorded(LogSampler):
    """A log sampler over a list of recorded harvests (the OS side)."""

    name = "recorded"

    def __init__(self, harvests: list[Harvest]) -> None:
        self.harvests = harvests
        self.cursors: list[str | None] = []

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        self.cursors.append(cursor)
        return self.harvests.pop(0)


def crash(key: str) -> dict[str, Any]:
    return {
        "event_id": stable_event_id("test", key),
        "ts": datetime(2026, 11, 20, tzinfo=UTC),
        "type": "app_crash",
        "app_name": "excel.exe",
        "source": "test",
        "_pid": 42,
    }


def test_cursor_is_kept_with_the_events_and_private_keys_never_spooled(
    tmp_path: Path, spool: Spool
) -> None:
    runner = SamplerRunner()
    sampler = Recorded(
        [
            Harvest([crash("a")], "c1", "wevtutil", None),
            Harvest([], None, "wevtutil", None),
            Harvest([crash("b")], "c2", "kmsg", "no journald"),
        ]
    )
    ctx = context(tmp_path, spool)
    for _ in range(3):
        runner.round([sampler], ctx, spool)
    assert sampler.cursors == [None, "c1", "c1"]  # None kept the previous cursor
    events = spooled(spool)
    assert [e["event_id"] for e in events] == [
        str(stable_event_id("test", "a")),
        str(stable_event_id("test", "b")),
    ]
    assert all("_pid" not in e for e in events)
    assert spool.mark("recorded.cursor") == "c2"
    assert json.loads(spool.mark(source_mark("recorded")) or "{}") == {
        "source": "kmsg",
        "degraded": "no journald",
    }


def test_a_failing_read_commits_no_cursor(tmp_path: Path, spool: Spool) -> None:
    class Broken(Recorded):
        def read(self, cursor: str | None, since: datetime) -> Harvest:
            raise OSError("journal corrupted")

    runner = SamplerRunner()
    runner.round([Broken([])], context(tmp_path, spool), spool)
    assert spool.mark("recorded.cursor") is None
    stats = runner.take_stats()["recorded"]
    assert stats["failures"] == 1 and "journal corrupted" in stats.get("last_error", "")


def logon(user: str, seconds: float, n: int) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "ts": datetime(2026, 11, 20, 8, n, tzinfo=UTC),
        "type": "logon",
        "logon_duration_s": seconds,
        "first_logon": False,
        "source": "test",
        "_user": user,
    }


class RecordedLogon(LogonSampler):
    def __init__(self, harvests: list[Harvest]) -> None:
        super().__init__()
        self.harvests = harvests

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        return self.harvests.pop(0)


def test_logon_user_names_are_hashed_per_tenant_and_first_sign_in_flagged(
    tmp_path: Path, spool: Spool
) -> None:
    sampler = RecordedLogon(
        [
            Harvest([logon("Alice", 41.0, 0), logon("bob", 12.0, 1)], "1", "t", None),
            Harvest([logon("alice", 9.5, 2)], "2", "t", None),
        ]
    )
    sampler.configure({"user_names": "hash", "pseudonym_key": KEY})
    runner = SamplerRunner()
    ctx = context(tmp_path, spool)
    runner.round([sampler], ctx, spool)
    runner.round([sampler], ctx, spool)
    events = spooled(spool)
    key = bytes.fromhex(KEY)
    assert [(e["user_hash"], e["first_logon"]) for e in events] == [
        (pseudonymise(key, "alice"), True),
        (pseudonymise(key, "bob"), True),
        (pseudonymise(key, "alice"), False),  # the same person, case-insensitively
    ]
    assert pseudonymise(bytes.fromhex("cd" * 32), "alice") != events[0]["user_hash"]
    text = json.dumps(events).lower()
    assert "alice" not in text and "bob" not in text


def test_logon_without_key_or_with_names_off_sends_no_user(tmp_path: Path, spool: Spool) -> None:
    for options in ({"user_names": "hash"}, {"user_names": "off", "pseudonym_key": KEY}):
        sampler = RecordedLogon([Harvest([logon("alice", 20.0, 0)], "1", "t", None)])
        sampler.configure(options)
        SamplerRunner().round([sampler], context(tmp_path, spool), spool)
    events = spooled(spool)
    assert len(events) == 2 and all("user_hash" not in e for e in events)


def test_sampler_options_are_validated_through_the_config(tmp_path: Path) -> None:
    registry = load_builtin_samplers()

    def build(samplers: dict[str, Any]) -> None:
        layers = ConfigLayers(
            {"samplers": samplers}, {}, {"state_dir": str(tmp_path)}, frozenset(registry)
        )
        layers.build()

    build({"logon": {"user_names": "off"}, "app_hang": {"min_hang_s": 10}})
    for bad, message in [
        ({"logon": {"user_names": "clear"}}, 'samplers.logon.user_names: must be "hash" or "off"'),
        ({"logon": {"pseudonym_key": "xyz"}}, "samplers.logon.pseudonym_key: must be 32 to 128"),
        ({"app_hang": {"min_hang_s": 0}}, "samplers.app_hang.min_hang_s: must be between 1"),
        ({"app_resource": {"max_apps": 2.5}}, "samplers.app_resource.max_apps: must be between"),
        ({"app_crash": {"verbose": True}}, "samplers.app_crash.verbose: unknown key"),
    ]:
        with pytest.raises(AgentConfigError) as err:
            build(bad)
        assert str(err.value).startswith(message), str(err.value)


class Seq:
    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def __call__(self, *args: Any) -> Any:
        return self.values.pop(0)


def test_sampled_hangs_need_two_samples_and_report_their_duration(
    tmp_path: Path, spool: Spool
) -> None:
    word = HungApp(pid=999_999_001, app_name="WINWORD.EXE", reason="window_not_responding")
    blip = HungApp(pid=999_999_002, app_name="tar", reason="d_state")
    clock = Seq([0.0, 30.0, 60.0, 90.0])
    sampler = AppHangSampler(
        sample=Seq([[word, blip], [word], [word], []]),
        read_log=lambda cursor, since: Harvest([], cursor, "none", None),
        clock=clock,
    )
    sampler.configure({"min_hang_s": 5})
    runner = SamplerRunner()
    ctx = context(tmp_path, spool)
    for _ in range(4):
        runner.round([sampler], ctx, spool)
    events = spooled(spool)
    # tar was in D once (a disk read), Word hung for 60 s between first and last sighting
    assert [(e["app_name"], e["hang_duration_s"], e["source"]) for e in events] == [
        ("WINWORD.EXE", 60.0, "sampled:window_not_responding")
    ]


def test_sampled_hang_of_a_killed_app_is_left_to_the_os_log(tmp_path: Path, spool: Spool) -> None:
    gone = HungApp(pid=999_999_003, app_name="OUTLOOK.EXE", reason="window_not_responding")
    logged = {
        "event_id": stable_event_id("wevtutil:Application", "77"),
        "ts": datetime(2026, 11, 20, tzinfo=UTC),
        "type": "app_hang",
        "app_name": "OUTLOOK.EXE",
        "hang_duration_s": 45.0,
        "source": "application-hang-1002",
    }
    sampler = AppHangSampler(
        sample=Seq([[gone], [gone], []]),
        read_log=Seq(
            [
                Harvest([], "1", "wevtutil", None),
                Harvest([], "1", "wevtutil", None),
                Harvest([logged], "2", "wevtutil", None),
            ]
        ),
        clock=Seq([0.0, 30.0, 60.0]),
    )
    runner = SamplerRunner()
    ctx = context(tmp_path, spool)
    for _ in range(3):
        runner.round([sampler], ctx, spool)
    assert [(e["app_name"], e["source"]) for e in spooled(spool)] == [
        ("OUTLOOK.EXE", "application-hang-1002")
    ]


def proc(pid: int, name: str, cpu_s: float, rss_mb: float, started: float = 1.0) -> ProcessSample:
    return ProcessSample(pid, name, cpu_s, int(rss_mb * 2**20), started)


def run_summary(tmp_path: Path, spool: Spool, foreground: list[int | None]) -> dict[str, Any]:
    snapshots = Seq(
        [
            [proc(1, "chrome", 100.0, 300), proc(2, "chrome", 50.0, 200), proc(3, "code", 10, 400)],
            [
                proc(1, "chrome", 130.0, 310),
                proc(2, "chrome", 55.0, 190),
                proc(4, "chrome", 7.0, 120, started=500.0),  # a new tab process
                proc(3, "code", 10.0, 400),
                proc(5, "idle", 0.0, 1),
            ],
        ]
    )
    # the constructor reads the clock once, then one run every 30 s from t = 0 to t = 300
    clock = Seq([0.0] + [float(t) for t in range(0, 330, 30)])
    sampler = AppResourceSampler(processes=snapshots, foreground=Seq(foreground), clock=clock)
    sampler.configure({"summary_s": 300, "max_apps": 1})
    runner = SamplerRunner()
    ctx = context(tmp_path, spool)
    for _ in range(11):
        runner.round([sampler], ctx, spool)
    assert runner.take_stats()["app_resource"]["failures"] == 0
    return {e["app_name"]: e for e in spooled(spool)}


def test_app_resource_groups_by_executable_and_summarises_per_period(
    tmp_path: Path, spool: Spool
) -> None:
    events = run_summary(tmp_path, spool, [None] * 11)
    assert set(events) == {"chrome"}  # max_apps = 1: the busiest
    chrome = events["chrome"]
    assert (chrome["process_count"], chrome["cpu_s"], chrome["interval_s"]) == (3, 42.0, 300.0)
    assert chrome["rss_mb"] == 620.0 and "foreground_s" not in chrome


def test_app_resource_foreground_time(
    tmp_path: Path, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.platform as facade

    monkeypatch.setattr(facade, "process_name", {1: "chrome", 3: "code"}.get)
    events = run_summary(tmp_path, spool, [None, 1, 1, 3, None, 1, None, None, None, None, 3])
    # code is reported beside the busiest because it had the foreground
    assert set(events) == {"chrome", "code"}
    assert events["chrome"]["foreground_s"] == 90.0  # three 30 s ticks
    assert events["code"]["foreground_s"] == 60.0  # two ticks
    assert events["code"]["cpu_s"] == 0.0
