"""The real samplers on this machine; their events must validate against the wire models.

pydantic is used here, in the test, to hold the agent's plain-dict events to the same
strict models the collector applies (never in the agent itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from agent.config import DEFAULTS, SamplerSettings
from agent.runner import SamplerRunner, build_samplers
from agent.samplers import REGISTRY, SamplerContext, load_builtin_samplers
from agent.samplers.resource import stall_seconds
from agent.spool import Spool
from dexscope.wire import Event

EVENT: pydantic.TypeAdapter[Event] = pydantic.TypeAdapter(
    Event, config=pydantic.ConfigDict(strict=False)
)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool.db")
    yield spool
    spool.close()


def make_context(tmp_path: Path, runner: SamplerRunner, spool: Spool) -> SamplerContext:
    return SamplerContext(tmp_path, spool.stats, runner.take_stats, spool.mark)


def spooled(spool: Spool) -> list[str]:
    batch = spool.begin_batch(1000, 1 << 30)
    return [] if batch is None else list(batch.events_json)


def test_builtin_registry() -> None:
    registry = load_builtin_samplers()
    assert set(registry) == {
        "boot",
        "logon",
        "resource_sample",
        "app_resource",
        "app_hang",
        "app_crash",
        "system_crash",
        "software_change",
        "probe",
        "survey",
        "agent_health",
    }
    assert list(registry)[-1] == "agent_health"
    assert set(DEFAULTS["samplers"]) == set(registry)
    assert registry["resource_sample"].interval_s == 60.0
    assert registry["boot"].interval_s == 300.0


def test_real_samplers_produce_valid_wire_events(tmp_path: Path, spool: Spool) -> None:
    runner = SamplerRunner()
    settings = {name: SamplerSettings(True, 60.0) for name in load_builtin_samplers()}
    samplers = build_samplers(REGISTRY, settings)
    assert samplers[-1].name == "agent_health"
    ctx = make_context(tmp_path, runner, spool)
    runner.round(samplers, ctx, spool)
    texts = spooled(spool)
    validated = [EVENT.validate_json(text) for text in texts]  # after the spool's JSON
    kinds = {e["type"] for e in validated}
    assert {"resource_sample", "agent_health"} <= kinds
    for text in texts:
        assert json.loads(text)["ts"].endswith("+00:00")
    health = next(json.loads(t) for t in texts if '"agent_health"' in t)
    assert health["samplers"]["resource_sample"]["runs"] == 1
    assert health["samplers"]["resource_sample"]["failures"] == 0
    assert health["samplers"]["boot"]["failures"] == 0
    assert 0 < health["rss_mb"] < 1024
    resource = next(json.loads(t) for t in texts if '"resource_sample"' in t)
    assert 0 <= resource["cpu_percent"] <= 100 and resource["interval_s"] > 0
    assert resource["memory_available_mb"] > 0
    if Path("/proc/pressure/cpu").exists():
        # The first sample's PSI delta covers the interval since the sampler was built.
        assert 0 <= resource["cpu_pressure_s"] <= resource["interval_s"]


def test_second_resource_sample_has_pressure_deltas(tmp_path: Path, spool: Spool) -> None:
    runner = SamplerRunner()
    resource = REGISTRY["resource_sample"]()
    ctx = make_context(tmp_path, runner, spool)
    for _ in range(2):
        runner.round([resource], ctx, spool)
    events = [EVENT.validate_json(t) for t in spooled(spool)]
    assert [e["type"] for e in events] == ["resource_sample", "resource_sample"]
    assert runner.take_stats()["resource_sample"]["runs"] == 2


def test_boot_is_reported_once_per_boot_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    runner = SamplerRunner()
    runner.round([REGISTRY["boot"]()], make_context(tmp_path, runner, spool), spool)
    first = spooled(spool)
    for text in first:
        event = EVENT.validate_json(text)
        assert event["type"] == "boot"
        assert event["boot_kind"] in ("cold", "unknown")
        assert ("boot_duration_s" in event) == (event["source"] == "systemd-analyze")
    spool.close()
    # A restarted agent (new sampler, reopened spool) does not report the same boot again.
    spool = Spool(path)
    again = REGISTRY["boot"]().collect(make_context(tmp_path, SamplerRunner(), spool))
    if first:
        assert again == []
    spool.close()


def test_stall_seconds_from_psi_totals() -> None:
    before = {"cpu": 10.0, "memory": 2.0, "io": 100.0}
    after = {"cpu": 10.5, "memory": 2.0, "io": 190.0}
    assert stall_seconds(before, after, 60.0) == {
        "cpu_pressure_s": 0.5,
        "memory_pressure_s": 0.0,
        "io_pressure_s": 60.0,  # bounded by the interval
    }
    assert stall_seconds(None, after, 60.0) == {}
    assert stall_seconds({"cpu": 11.0}, {"cpu": 10.0, "io": 1.0}, 60.0) == {"cpu_pressure_s": 0.0}
