"""What the uploader does with each collector answer, and what it sends (no HTTP here)."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pydantic
import pytest

from agent.config import UploadSettings
from agent.spool import Spool
from agent.state import Identity
from agent.uploader import Accept, Reject, Retry, Uploader, decide
from dexscope.wire import Batch


@pytest.mark.parametrize("status", [200, 201])
def test_success(status: int) -> None:
    assert decide(status, {}) == Accept()


@pytest.mark.parametrize("status", [400, 409, 413, 422])
def test_permanent_refusals_are_quarantined_with_the_message(status: int) -> None:
    decision = decide(status, {}, "events[0].ts: too old")
    assert isinstance(decision, Reject)
    assert decision.reason == f"HTTP {status}: events[0].ts: too old"


@pytest.mark.parametrize("status", [401, 403])
def test_token_problems_keep_the_data(status: int) -> None:
    decision = decide(status, {})
    assert isinstance(decision, Retry) and "device token refused" in decision.reason


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers_honour_retry_after(status: int) -> None:
    assert decide(status, {"Retry-After": "42"}) == Retry(f"HTTP {status}", 42.0)
    assert decide(status, httpx.Headers({"retry-after": "7"})) == Retry(f"HTTP {status}", 7.0)


@pytest.mark.parametrize("status", [404, 408, 415, 500, 502, 504])
def test_other_answers_keep_and_back_off(status: int) -> None:
    assert decide(status, {}) == Retry(f"HTTP {status}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def settings(**changes: float) -> UploadSettings:
    values: dict[str, float] = {
        "max_batch_events": 3,
        "max_batch_bytes": 1 << 20,
        "max_batch_age_s": 60.0,
        "flush_jitter": 0.1,
        "timeout_s": 10.0,
        "backoff_base_s": 1.0,
        "backoff_max_s": 300.0,
        **changes,
    }
    return UploadSettings(**values)  # type: ignore[arg-type]


def resource_event() -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "ts": datetime.now(UTC),
        "type": "resource_sample",
        "interval_s": 60.0,
        "cpu_percent": 12.5,
        "memory_percent": 40.0,
    }


@pytest.fixture
def uploader(tmp_path: Path) -> Iterator[tuple[Uploader, Spool, Clock]]:
    clock = Clock()
    spool = Spool(tmp_path / "spool.db", clock=clock)
    identity = Identity(str(uuid.uuid4()), "device-secret", "https://dex.example", "2026-01-01")
    with httpx.Client() as client:  # never used to send in these tests
        up = Uploader(
            identity,
            "https://dex.example/",
            spool,
            settings(),
            client,
            clock=clock,
            rng=random.Random(5),
        )
        yield up, spool, clock
    spool.close()


def test_body_is_a_gzip_wire_batch(uploader: tuple[Uploader, Spool, Clock]) -> None:
    up, spool, _ = uploader
    spool.append([resource_event(), resource_event()])
    batch = spool.begin_batch(10, 1 << 20)
    assert batch is not None
    raw = gzip.decompress(up.body(batch))
    validated = pydantic.TypeAdapter(Batch).validate_json(raw)
    assert str(validated["batch_id"]) == batch.batch_id
    assert str(validated["device_id"]) == up.identity.device_id
    assert validated["schema_version"] == 1 and len(validated["events"]) == 2
    assert "device-secret" not in raw.decode()
    assert json.loads(raw)["sent_at"].endswith("+00:00")


def test_flush_when_full_or_old(uploader: tuple[Uploader, Spool, Clock]) -> None:
    up, spool, clock = uploader
    assert not up.due()  # nothing spooled
    spool.append([resource_event()])
    assert up.due()  # the very first batch goes at once
    up._age_limit = up._jittered_age()  # as after a first successful upload
    assert 54.0 <= up._age_limit <= 66.0
    assert not up.due()
    clock.now += 67.0
    assert up.due()  # the oldest event is now older than max_batch_age_s (+ jitter)
    clock.now -= 67.0
    spool.append([resource_event(), resource_event()])
    assert up.due()  # a full batch (max_batch_events = 3) waits


def test_settings_update_keeps_the_retry_state(uploader: tuple[Uploader, Spool, Clock]) -> None:
    up, _, _ = uploader
    up.backoff.failure()
    up.update_settings(settings(backoff_max_s=30.0, max_batch_events=100))
    assert up.backoff.failures == 1 and up.backoff.max_s == 30.0
    assert up.settings.max_batch_events == 100
