"""The real samplers on this machine; their events must validate against the collector."""

from __future__ import annotations

import json
from pathlib import Path

from agent.runner import SamplerRunner, Scheduler, build_samplers
from agent.samplers import REGISTRY, Sampler, SamplerContext, load_builtin_samplers
from agent.spool import Spool
from collector.ingest.schemas import EVENT
from dexscope.wire import Event


def context(tmp_path: Path, runner: SamplerRunner, spool: Spool) -> SamplerContext:
    return SamplerContext(tmp_path, spool.stats, runner.take_stats)


def test_builtin_registry() -> None:
    assert {"boot", "resource_sample", "agent_health"} <= set(load_builtin_samplers())


def test_real_samplers_produce_valid_wire_events(tmp_path: Path) -> None:
    from agent.config import SamplerSettings

    spool = Spool(tmp_path / "spool.db")
    runner = SamplerRunner()
    settings = {name: SamplerSettings(True, 60.0) for name in load_builtin_samplers()}
    samplers = build_samplers(REGISTRY, settings, context(tmp_path, runner, spool))
    assert samplers[-1].name == "agent_health"
    events = [e for s in samplers for e in runner.run(s)]
    spool.append(events)
    batch = spool.begin_batch(100, 1 << 20)
    assert batch is not None
    kinds = set()
    for text in batch.events_json:
        validated = EVENT.validate_json(text)
        kinds.add(validated["type"])
    assert {"resource_sample", "agent_health"} <= kinds
    health = next(json.loads(t) for t in batch.events_json if '"agent_health"' in t)
    assert health["samplers"]["resource_sample"]["runs"] == 1
    assert health["samplers"]["resource_sample"]["failures"] == 0
    assert 0 < health["rss_mb"] < 1024


def test_boot_is_reported_once_per_boot(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    runner = SamplerRunner()
    boot = REGISTRY["boot"](context(tmp_path, runner, spool))
    first = boot.collect()
    assert boot.collect() == []
    for e in first:
        assert EVENT.validate_python(json.loads(json.dumps(e, default=str)))["type"] == "boot"


class Broken(Sampler):
    name = "broken"

    def collect(self) -> list[Event]:
        raise OSError("no such device")


class Empty(Sampler):
    name = "empty"

    def collect(self) -> list[Event]:
        return []


def test_runner_isolates_failures_and_counts_no_data_as_success(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    runner = SamplerRunner()
    ctx = context(tmp_path, runner, spool)
    assert runner.run(Broken(ctx)) == []
    assert runner.run(Empty(ctx)) == []
    stats = runner.take_stats()
    assert stats["broken"]["failures"] == 1
    assert stats["broken"]["last_error"] == "OSError: no such device"
    assert stats["empty"] == {
        "runs": 1,
        "failures": 0,
        "last_duration_ms": stats["empty"]["last_duration_ms"],
    }
    assert runner.take_stats() == {}


def test_scheduler_runs_each_on_its_interval(tmp_path: Path) -> None:
    now = [0.0]
    spool = Spool(tmp_path / "spool.db")
    ctx = context(tmp_path, SamplerRunner(), spool)
    fast, slow = Empty(ctx), Broken(ctx)
    scheduler = Scheduler([fast, slow], {"empty": 10.0, "broken": 100.0}, clock=lambda: now[0])
    assert {s.name for s in scheduler.due()} == {"empty", "broken"}
    now[0] = 11.0
    assert [s.name for s in scheduler.due()] == ["empty"]
    assert scheduler.next_in_s() <= 10.2
    now[0] = 103.0
    assert {s.name for s in scheduler.due()} == {"empty", "broken"}
