"""Ingest through ``dexscope collector serve --workers 2``: a real process, real HTTP.

Nothing may assume one process: batches spread over the workers are all stored, and the
same batch posted at once by several clients (so reaching both workers) is stored once.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest
import sqlalchemy as sa

from collector.settings import normalise_database_url
from tests.support import (
    REPO,
    Device,
    Tenant,
    count_rows,
    create_tenant,
    dexscope_cmd,
    enroll,
    free_port,
    make_batch,
    now_utc,
    resource_event,
)


class _Served:
    def __init__(self, url: str, database_url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.database_url = database_url
        self.proc = proc


@pytest.fixture(scope="module")
def served(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    """``collector serve --workers 2`` on a loopback port, ready."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("logs") / "collector.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            dexscope_cmd(
                "collector",
                "serve",
                "--database-url",
                module_database_url,
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ),
            stdout=log,
            stderr=log,
            cwd=REPO,
            env=dict(os.environ),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        # both workers up (uvicorn's supervisor forks them)
        while len(psutil.Process(proc.pid).children(recursive=True)) < 2:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(0.5)
        yield _Served(url, module_database_url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def tenant(served: _Served) -> Tenant:
    """A tenant on the module's collector."""
    return create_tenant(served.database_url)


@pytest.fixture
def device(served: _Served, tenant: Tenant) -> Device:
    """A freshly enrolled device."""
    return enroll(served.url, tenant.enrollment_token, f"ws-{uuid.uuid4().hex[:6]}")


def _stored(served: _Served, device: Device) -> tuple[int, int]:
    params = {"d": uuid.UUID(device.device_id).hex}
    where = "replace(CAST(device_id AS TEXT), '-', '') = :d"
    return (
        count_rows(served.database_url, "events", where, **params),
        count_rows(served.database_url, "ingest_batches", where, **params),
    )


def _post_all(served: _Served, device: Device, bodies: list[bytes]) -> list[httpx.Response]:
    """Post every body from its own thread, all released at the same instant."""
    barrier = threading.Barrier(len(bodies))
    responses: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * len(bodies)

    def send(i: int) -> None:
        with httpx.Client(timeout=60) as client:
            client.get(served.url + "/readyz")  # connect before the barrier
            barrier.wait()
            try:
                responses[i] = client.post(
                    f"{served.url}/api/v1/ingest",
                    content=bodies[i],
                    headers={
                        **device.headers,
                        "Content-Type": "application/json",
                        "Content-Encoding": "gzip",
                    },
                )
            except BaseException as exc:
                responses[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    out = []
    for r in responses:
        assert isinstance(r, httpx.Response), r
        out.append(r)
    return out


def test_batches_spread_over_two_workers_are_all_stored(served, device) -> None:
    bodies = [
        gzip.compress(
            json.dumps(make_batch(device.device_id, [resource_event() for _ in range(50)])).encode()
        )
        for _ in range(12)
    ]
    responses = _post_all(served, device, bodies)
    assert [r.status_code for r in responses] == [200] * 12, [r.text for r in responses]
    assert all(r.json()["accepted"] == 50 and not r.json()["duplicate"] for r in responses)
    assert _stored(served, device) == (600, 12)


def test_same_batch_posted_concurrently_is_stored_once(served, device) -> None:
    for _ in range(3):  # a few rounds: the race must never store twice nor fail
        batch = make_batch(device.device_id, [resource_event() for _ in range(200)])
        body = gzip.compress(json.dumps(batch).encode())
        before = _stored(served, device)
        responses = _post_all(served, device, [body] * 8)
        assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
        answers = sorted((r.json()["duplicate"], r.json()["accepted"]) for r in responses)
        assert answers == [(False, 200)] + [(True, 0)] * 7
        after = _stored(served, device)
        assert (after[0] - before[0], after[1] - before[1]) == (200, 1)


def test_stored_event_keeps_its_fields_and_shifted_utc_time(served, device) -> None:
    """The one-statement insert writes exactly what the ORM reads back."""
    sent_at = now_utc() - timedelta(hours=1)  # the device clock runs an hour late
    local = (now_utc() - timedelta(hours=1, minutes=5)).astimezone(
        datetime.now().astimezone().tzinfo
    )
    event = resource_event(
        ts=local.replace(microsecond=0),
        cpu_percent=12,
        swap_percent=0.5,
        cpu_pressure_s=1.25,
    )
    batch = make_batch(device.device_id, [event], sent_at=sent_at.isoformat())
    r = httpx.post(
        f"{served.url}/api/v1/ingest",
        json=batch,
        headers=device.headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    from collector.db import make_engine, make_sessionmaker
    from collector.ingest.models import Event, IngestBatch

    engine = make_engine(normalise_database_url(served.database_url))
    try:
        with make_sessionmaker(engine)() as session:
            stored = session.scalars(
                sa.select(Event).where(Event.device_id == uuid.UUID(device.device_id))
            ).one()
            record = session.scalars(
                sa.select(IngestBatch).where(IngestBatch.batch_id == uuid.UUID(batch["batch_id"]))
            ).one()
    finally:
        engine.dispose()
    assert stored.event_id == uuid.UUID(event["event_id"])
    assert stored.type == "resource_sample"
    assert stored.batch_pk == record.id
    assert stored.data == {
        "interval_s": 60.0,
        "cpu_percent": 12.0,
        "memory_percent": 41.0,
        "swap_percent": 0.5,
        "cpu_pressure_s": 1.25,
    }
    assert stored.ts.tzinfo is not None and stored.ts.utcoffset() == timedelta(0)
    shift = timedelta(seconds=record.clock_offset_s)
    assert abs(record.clock_offset_s - 3600) < 60
    assert stored.ts == (datetime.fromisoformat(event["ts"]) + shift).astimezone(UTC)
    assert stored.received_at == record.received_at
