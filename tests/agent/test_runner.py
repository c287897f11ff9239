"""The sampler runner (timing, isolation, stats, atomic rounds) and the scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import SamplerSettings
from agent.runner import SamplerRunner, Scheduler, build_samplers
from agent.samplers import Sampler, SamplerContext, event_base, load_builtin_samplers
from agent.spool import Spool
from dexscope.wire import Event


class Ticks:
    """A clock that advances 25 ms per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.025
        return self.now


class Broken(Sampler):
    name = "broken"

    def collect(self, ctx: SamplerContext) -> list[Event]:
        ctx.remember("broken.marker", "must not be stored")
        raise OSError("no such device")


class Empty(Sampler):
    name = "empty"

    def collect(self, ctx: SamplerContext) -> list[Event]:
        return []


class Crash(Sampler):
    name = "crashy"

    def collect(self, ctx: SamplerContext) -> list[Event]:
        ctx.remember("crashy.seen", "1")
        event = {
            **event_base(),
            "type": "app_crash",
            "app_name": "editor",
            "source": "test",
        }
        return [event]  # type: ignore[list-item]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool.db")
    yield spool
    spool.close()


def ctx_for(tmp_path: Path, runner: SamplerRunner, spool: Spool) -> SamplerContext:
    return SamplerContext(tmp_path, spool.stats, runner.take_stats, spool.mark)


def test_failure_is_isolated_recorded_and_no_data_is_success(tmp_path: Path, spool: Spool) -> None:
    runner = SamplerRunner(clock=Ticks())
    ctx = ctx_for(tmp_path, runner, spool)
    stored = runner.round([Broken(), Empty(), Crash()], ctx, spool)
    assert stored == 1  # the broken sampler did not stop the one after it
    stats = runner.take_stats()
    assert stats["broken"] == {
        "runs": 1,
        "failures": 1,
        "last_duration_ms": 25.0,
        "last_error": "OSError: no such device",
    }
    assert stats["empty"] == {"runs": 1, "failures": 0, "last_duration_ms": 25.0}
    assert stats["crashy"]["failures"] == 0
    assert runner.take_stats() == {}  # a new period starts
    # What the failing sampler asked to remember was discarded; the others' was committed.
    assert spool.mark("broken.marker") is None
    assert spool.mark("crashy.seen") == "1"


def test_stats_accumulate_over_a_period(tmp_path: Path, spool: Spool) -> None:
    runner = SamplerRunner(clock=Ticks())
    ctx = ctx_for(tmp_path, runner, spool)
    for _ in range(3):
        runner.run(Broken(), ctx)
    runner.run(Empty(), ctx)
    stats = runner.take_stats()
    assert (stats["broken"]["runs"], stats["broken"]["failures"]) == (3, 3)
    assert stats["empty"]["runs"] == 1


def test_build_samplers_health_last_and_reuses_instances() -> None:
    settings = {
        "agent_health": SamplerSettings(True, 300.0),
        "resource_sample": SamplerSettings(True, 60.0),
        "boot": SamplerSettings(False, 300.0),
    }
    registry = load_builtin_samplers()  # alone, a test module may not have imported them all
    first = build_samplers(registry, settings)
    assert [s.name for s in first] == ["resource_sample", "agent_health"]
    settings["boot"] = SamplerSettings(True, 300.0)
    second = build_samplers(registry, settings, first)
    assert [s.name for s in second] == ["resource_sample", "boot", "agent_health"]
    assert second[0] is first[0] and second[2] is first[1]


def test_scheduler_runs_each_on_its_interval() -> None:
    now = [0.0]
    fast, slow = Empty(), Broken()
    scheduler = Scheduler([fast, slow], {"empty": 10.0, "broken": 100.0}, clock=lambda: now[0])
    assert [s.name for s in scheduler.due()] == ["empty", "broken"]
    assert scheduler.due() == []
    now[0] = 11.0
    assert [s.name for s in scheduler.due()] == ["empty"]
    assert 9.0 <= scheduler.next_in_s() <= 10.5
    now[0] = 103.0
    assert [s.name for s in scheduler.due()] == ["empty", "broken"]


def test_scheduler_update_keeps_schedules_and_adds_new_samplers() -> None:
    now = [0.0]
    fast, slow = Empty(), Broken()
    scheduler = Scheduler([slow], {"broken": 100.0}, clock=lambda: now[0])
    assert scheduler.due() == [slow]
    now[0] = 5.0
    scheduler.update([slow, fast], {"broken": 20.0, "empty": 10.0})
    assert scheduler.due() == [fast]  # new: due at once; slow's next run brought forward
    now[0] = 12.0
    assert scheduler.due() == []
    now[0] = 23.0  # slow ran at 0: with its new 20 s interval it is due again by now
    assert scheduler.due() == [slow, fast]
    empty = Scheduler([], {}, clock=lambda: now[0])
    assert empty.next_in_s() == 3600.0
