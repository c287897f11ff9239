"""The uploader and clock jumps, with injected wall and boot clocks (no HTTP here).

- events stamped by a clock that ran fast are re-stamped from their boot-clock age when sent,
  against the same wall-clock reading as ``sent_at``; other events keep their exact text;
- batch ages come from the boot clock, so a backward wall-clock jump never holds a batch back.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from agent.config import UploadSettings
from agent.spool import Spool
from agent.state import Identity
from agent.uploader import MIN_WAIT_S, RESTAMP_TOLERANCE_S, Uploader, restamp
from dexscope.wire import Batch

T0 = 1_780_000_000.0
"""A wall-clock time (seconds) in 2026."""


class Tick:
    """An injected clock (seconds) the tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def resource(ts: float | str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "ts": iso(ts) if isinstance(ts, float) else ts,
        "type": "resource_sample",
        "interval_s": 60.0,
        "cpu_percent": 1.0,
        "memory_percent": 2.0,
    }


def texts(*events: dict[str, Any]) -> tuple[str, ...]:
    return tuple(json.dumps(e, separators=(",", ":")) for e in events)


def test_an_event_stamped_ahead_of_its_age_is_restamped() -> None:
    now = T0
    (out,) = restamp(texts(resource(now + 3600.0)), (30.0,), now)
    event = json.loads(out)
    assert seconds(event["ts"]) == pytest.approx(now - 30.0, abs=1e-6)
    assert event["ts"].endswith("+00:00") and event["type"] == "resource_sample"


def test_events_that_may_predate_their_spooling_keep_their_text() -> None:
    now = T0
    events = texts(
        resource(now - 30.0),  # sampled when spooled
        resource(now - 7200.0),  # a crash read from a log, spooled 30 s ago
        resource(now - 30.0 + RESTAMP_TOLERANCE_S - 1.0),  # within the tolerance
        resource(now + 30.0),  # no known age (an earlier boot): bounded by now only
    )
    assert restamp(events, (30.0, 30.0, 30.0, None), now) == events


def test_an_event_without_an_age_is_bounded_by_now() -> None:
    now = T0
    events = texts(resource(now + 3600.0))
    (out,) = restamp(events, (None,), now)
    assert seconds(json.loads(out)["ts"]) == pytest.approx(now, abs=1e-6)
    assert restamp(events, (), now) == (out,)  # ages missing altogether


@pytest.mark.parametrize("ts", ["2026-01-01T00:00:00", "Z" * 20, 17])
def test_past_naive_or_unreadable_times_are_left_to_the_collector(ts: Any) -> None:
    events = texts(resource(ts) if isinstance(ts, str) else {**resource(T0), "ts": ts})
    assert restamp(events, (1.0,), T0) == events
    assert restamp(("not json",), (1.0,), T0) == ("not json",)


def settings(**changes: float) -> UploadSettings:
    values: dict[str, float] = {
        "max_batch_events": 10,
        "max_batch_bytes": 1 << 20,
        "max_batch_age_s": 60.0,
        "flush_jitter": 0.1,
        "timeout_s": 10.0,
        "backoff_base_s": 1.0,
        "backoff_max_s": 300.0,
        **changes,
    }
    return UploadSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Uploader, Spool, Tick, Tick]]:
    """An uploader and spool on an injected wall clock and boot clock, age limit ~60 s."""
    wall, mono = Tick(T0), Tick(1000.0)
    spool = Spool(tmp_path / "spool.db", clock=wall, monotonic=mono, boot_id="boot-1")
    identity = Identity(str(uuid.uuid4()), "secret", "https://dex.example", "2026-01-01")
    with httpx.Client() as client:  # never used to send here
        up = Uploader(
            identity,
            identity.server_url,
            spool,
            settings(),
            client,
            clock=wall,
            rng=random.Random(3),
        )
        up._age_limit = up._jittered_age()  # as after a first successful upload
        assert 54.0 <= up._age_limit <= 66.0
        yield up, spool, wall, mono
    spool.close()


def sent(up: Uploader, spool: Spool) -> dict[str, Any]:
    batch = spool.begin_batch(10, 1 << 20)
    assert batch is not None
    raw = gzip.decompress(up.body(batch))
    pydantic.TypeAdapter(Batch).validate_json(raw)
    body: dict[str, Any] = json.loads(raw)
    return body


def test_the_body_restamps_against_sent_at(
    clocked: tuple[Uploader, Spool, Tick, Tick],
) -> None:
    """Sampled on a clock 1 h fast, sent after NTP set it back: every time is in the past."""
    up, spool, wall, mono = clocked
    before, after = resource(wall.now), None
    spool.append([before])
    wall.now -= 3600.0  # NTP sets the clock back
    mono.now += 10.0
    wall.now += 10.0
    after = resource(wall.now)
    spool.append([after])
    mono.now += 5.0
    wall.now += 5.0
    body = sent(up, spool)
    sent_at = seconds(body["sent_at"])
    assert sent_at == wall.now
    first, second = body["events"]
    assert first["event_id"] == before["event_id"]
    assert seconds(first["ts"]) == pytest.approx(sent_at - 15.0, abs=1e-6)
    assert second == after  # stamped by the corrected clock: kept as it was


def test_a_retry_after_the_jump_is_restamped_with_the_same_ids(
    clocked: tuple[Uploader, Spool, Tick, Tick],
) -> None:
    up, spool, wall, mono = clocked
    spool.append([resource(wall.now) for _ in range(3)])
    first = sent(up, spool)
    spool.keep(first["batch_id"], "HTTP 503")
    wall.now -= 3600.0
    mono.now += 20.0
    wall.now += 20.0
    again = sent(up, spool)
    assert again["batch_id"] == first["batch_id"]
    assert [e["event_id"] for e in again["events"]] == [e["event_id"] for e in first["events"]]
    assert all(seconds(e["ts"]) <= seconds(again["sent_at"]) - 20.0 for e in again["events"])


def test_a_backward_jump_does_not_delay_the_batch(
    clocked: tuple[Uploader, Spool, Tick, Tick],
) -> None:
    """40 s after spooling the clock goes back 35 s: the batch is due at ~60 s of real
    time, not at ~60 s of the wall clock (95 s)."""
    up, spool, wall, mono = clocked
    spool.append([resource(wall.now)])
    mono.now += 40.0
    wall.now += 40.0 - 35.0
    assert not up.due()
    assert up.next_due_in_s() == pytest.approx(up._age_limit - 40.0)
    mono.now += 30.0
    wall.now += 30.0  # 70 s of real time, 35 s of wall-clock time since spooling
    assert up.due() and up.next_due_in_s() == MIN_WAIT_S


def test_a_jump_back_past_the_spooling_makes_the_batch_due(
    clocked: tuple[Uploader, Spool, Tick, Tick],
) -> None:
    up, spool, wall, mono = clocked
    spool.append([resource(wall.now)])
    wall.now -= 3600.0
    mono.now += 1.0
    assert up.due() and up.next_due_in_s() == MIN_WAIT_S


def test_a_forward_jump_makes_the_batch_due_no_later(
    clocked: tuple[Uploader, Spool, Tick, Tick],
) -> None:
    up, spool, wall, mono = clocked
    spool.append([resource(wall.now)])
    mono.now += 1.0
    wall.now += 1.0 + 1800.0
    assert up.due()  # early rather than late: one small batch
    body = sent(up, spool)
    assert seconds(body["events"][0]["ts"]) == T0  # in the past of sent_at: kept


def test_an_empty_spool_is_never_due(clocked: tuple[Uploader, Spool, Tick, Tick]) -> None:
    up, _, wall, _ = clocked
    wall.now -= 3600.0
    assert not up.due()
