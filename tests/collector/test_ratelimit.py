"""Rate limits: the token bucket on a fake clock, then a real collector process with low limits.

The process tests check the 429 (``rate_limited``, ``Retry-After`` in whole seconds), that a
refused batch stores nothing, and that the agent's retry after the wait stores every event
exactly once (the uploader in process, and ``dexscope agent run --once`` as a subprocess).
"""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import DEFAULTS, UploadSettings
from agent.spool import Spool
from agent.state import Identity
from agent.uploader import Accept, Retry, Uploader
from collector.ratelimit import RateLimits, TokenBucketLimiter, retry_after_header
from collector.settings import Settings
from tests.support import (
    CollectorProcess,
    count_rows,
    create_tenant,
    enroll,
    make_batch,
    resource_event,
    run_cli,
)


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refuses_until_a_token_is_back() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(rate_per_min=6, burst=3, clock=clock)  # a token per 10 s
    assert [bucket.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire("a") == pytest.approx(10.0)
    clock.now += 4
    assert bucket.acquire("a") == pytest.approx(6.0)  # a refusal takes nothing
    clock.now += 6
    assert bucket.acquire("a") == 0.0
    assert bucket.acquire("a") == pytest.approx(10.0)
    assert bucket.acquire("b") == 0.0  # keys are independent
    clock.now += 3600
    assert [bucket.acquire("a") for _ in range(4)][-1] > 0  # refills to burst, not beyond


def test_full_buckets_are_forgotten() -> None:
    clock = FakeClock()
    bucket = TokenBucketLimiter(rate_per_min=60, burst=2, clock=clock, sweep_s=10)
    for i in range(100):
        bucket.acquire(f"device-{i}")
    assert len(bucket) == 100
    clock.now += 11  # all refilled (2 tokens at 1/s) and a sweep is due
    bucket.acquire("new")
    assert len(bucket) == 1


def test_bucket_rejects_nonsense_and_retry_after_rounds_up() -> None:
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate_per_min=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate_per_min=1, burst=0)
    assert [retry_after_header(s) for s in (0.001, 1.0, 1.2, 59.99)] == [1, 1, 2, 60]


def test_defaults_are_on_and_generous_and_zero_switches_off() -> None:
    limits = RateLimits(Settings(database_url="sqlite://"))
    assert limits.ingest_per_device is not None and limits.ingest_per_ip is not None
    assert limits.enroll_per_ip is not None
    # a device reporting every 5 minutes is 0.2 requests a minute
    assert limits.ingest_per_device.rate_per_s * 60 >= 100 * 0.2
    off = RateLimits(
        Settings(
            database_url="sqlite://",
            ingest_rate_per_device_per_min=0,
            ingest_rate_per_ip_per_min=0,
            enroll_rate_per_ip_per_min=0,
        )
    )
    assert (off.ingest_per_device, off.ingest_per_ip, off.enroll_per_ip) == (None, None, None)


# --- a real collector process --------------------------------------------------------------

UPLOAD = UploadSettings(
    max_batch_events=10,
    max_batch_bytes=1 << 20,
    max_batch_age_s=0.0,
    flush_jitter=0.0,
    timeout_s=10.0,
    backoff_base_s=0.2,
    backoff_max_s=1.0,
)

LIMIT_ENV = {
    # one ingest per device, then one every 5 s; addresses and enrollment unlimited
    "DEXSCOPE_INGEST_RATE_PER_DEVICE_PER_MIN": "12",
    "DEXSCOPE_INGEST_BURST_PER_DEVICE": "1",
    "DEXSCOPE_INGEST_RATE_PER_IP_PER_MIN": "0",
    "DEXSCOPE_ENROLL_RATE_PER_IP_PER_MIN": "0",
}


@pytest.fixture
def limited(database_url: str, tmp_path: Path) -> Iterator[tuple[str, CollectorProcess]]:
    run_cli("collector", "migrate", "--database-url", database_url)
    with CollectorProcess(database_url, tmp_path / "collector.log", extra_env=LIMIT_ENV) as c:
        yield database_url, c


def _event() -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "ts": datetime.now(UTC),
        "type": "resource_sample",
        "interval_s": 60.0,
        "cpu_percent": 12.5,
        "memory_percent": 40.0,
    }


def _stored(database_url: str) -> tuple[int, int]:
    return count_rows(database_url, "events"), count_rows(database_url, "ingest_batches")


def test_a_refused_batch_stores_nothing_and_the_retry_stores_it_once(
    limited: tuple[str, CollectorProcess], tmp_path: Path
) -> None:
    database_url, collector = limited
    tenant = create_tenant(database_url)
    device = enroll(collector.url, tenant.enrollment_token)
    identity = Identity(device.device_id, device.token, collector.url, "2026-01-01")
    spool = Spool(tmp_path / "spool.db")
    with httpx.Client(timeout=10) as client:
        uploader = Uploader(identity, collector.url, spool, UPLOAD, client, rng=random.Random(1))
        spool.append([_event() for _ in range(3)])
        assert uploader.send_one() == Accept()
        assert _stored(database_url) == (3, 1)

        spool.append([_event() for _ in range(4)])
        decision = uploader.send_one()
        assert isinstance(decision, Retry), decision
        assert decision.after_s == 5.0 and "HTTP 429" in decision.reason
        assert "too many requests from this device" in decision.reason
        assert uploader.backoff.wait_s() > 4.0  # the agent waits at least Retry-After
        assert _stored(database_url) == (3, 1)  # nothing of the refused batch
        assert spool.pending().events == 4

        # the raw answer: the project's error shape and a whole-seconds Retry-After
        raw = httpx.post(
            f"{collector.url}/api/v1/ingest",
            content=gzip.compress(
                json.dumps(make_batch(device.device_id, [resource_event()])).encode()
            ),
            headers={**device.headers, "Content-Encoding": "gzip"},
        )
        assert raw.status_code == 429
        assert raw.json()["error"]["code"] == "rate_limited"
        assert set(raw.json()["error"]) == {"code", "message"}
        assert raw.headers["retry-after"].isdigit() and int(raw.headers["retry-after"]) >= 1
        assert _stored(database_url) == (3, 1)

        time.sleep(uploader.backoff.wait_s() + 1.0)
        assert uploader.send_one() == Accept()
        assert uploader.send_one() is None
    spool.close()
    assert _stored(database_url) == (7, 2)
    assert count_rows(database_url, "(SELECT DISTINCT event_id FROM events) AS ids") == 7

    # another device has its own bucket
    other = enroll(collector.url, tenant.enrollment_token, hostname="ws-002")
    answer = httpx.post(
        f"{collector.url}/api/v1/ingest",
        json=make_batch(other.device_id, [resource_event()]),
        headers=other.headers,
    )
    assert answer.status_code == 200, answer.text


def _agent_status(state_dir: Path) -> dict[str, Any]:
    out = run_cli("agent", "status", "--state-dir", str(state_dir), "--json").stdout
    status: dict[str, Any] = json.loads(out)
    return status


def test_agent_run_once_after_a_429_uploads_everything_exactly_once(
    limited: tuple[str, CollectorProcess], tmp_path: Path
) -> None:
    database_url, collector = limited
    tenant = create_tenant(database_url)
    state = tmp_path / "agent"
    args = ("agent", "run", "--server", collector.url, "--enroll-token", tenant.enrollment_token)
    run_cli(*args, "--state-dir", str(state), "--once")
    first = _agent_status(state)
    assert first["spool_events"] == 0 and first["events_appended_total"] > 0

    refused = run_cli(*args, "--state-dir", str(state), "--once")  # within 5 s
    assert "HTTP 429" in refused.stderr, refused.stderr
    assert _agent_status(state)["spool_events"] > 0

    time.sleep(5.5)
    # a retry that samples nothing new, so one token is all it needs
    quiet = tmp_path / "quiet.toml"
    quiet.write_text(
        "".join(f"[samplers.{name}]\nenabled = false\n" for name in DEFAULTS["samplers"])
    )
    retried = run_cli(*args, "--state-dir", str(state), "--once", "--config", str(quiet))
    assert "sent 1 batch(es)" in retried.stderr, retried.stderr
    status = _agent_status(state)
    assert status["spool_events"] == 0, status
    expected = status["events_appended_total"] - status["dropped_events_total"]
    assert count_rows(database_url, "events") == expected
    assert count_rows(database_url, "(SELECT DISTINCT event_id FROM events) AS ids") == expected


def test_enroll_and_ingest_are_limited_per_address(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'collector.db'}"
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    env = {
        "DEXSCOPE_ENROLL_RATE_PER_IP_PER_MIN": "1",
        "DEXSCOPE_ENROLL_BURST_PER_IP": "2",
        "DEXSCOPE_INGEST_RATE_PER_IP_PER_MIN": "1",
        "DEXSCOPE_INGEST_BURST_PER_IP": "1",
    }
    with CollectorProcess(database_url, tmp_path / "collector.log", extra_env=env) as collector:
        devices = [
            enroll(collector.url, tenant.enrollment_token, hostname=f"ws-{i}") for i in range(2)
        ]
        third = httpx.post(f"{collector.url}/api/v1/enroll", json={"enrollment_token": "x"})
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(third.headers["retry-after"]) <= 60
        assert count_rows(database_url, "devices") == 2

        # the agent takes an enrollment 429 as "try later" (exit 3), not as a refusal
        agent = run_cli(
            "agent",
            "run",
            "--server",
            collector.url,
            "--enroll-token",
            tenant.enrollment_token,
            "--state-dir",
            str(tmp_path / "agent"),
            "--once",
            check=False,
        )
        assert agent.returncode == 3, agent.stderr
        assert "rate limiting enrollments: retry in" in agent.stderr

        ok = httpx.post(
            f"{collector.url}/api/v1/ingest",
            json=make_batch(devices[0].device_id, [resource_event()]),
            headers=devices[0].headers,
        )
        assert ok.status_code == 200, ok.text
        # another device, same address: refused before its token is even looked at
        refused = httpx.post(
            f"{collector.url}/api/v1/ingest",
            json=make_batch(devices[1].device_id, [resource_event()]),
            headers=devices[1].headers,
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["message"].startswith("too many requests from this address")
        assert count_rows(database_url, "ingest_batches") == 1
