"""Ingest over real HTTP against a real collector process, on SQLite and PostgreSQL.

Every rejection must give its precise status and error code and store nothing.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from collector.settings import normalise_database_url
from tests.support import (
    CollectorProcess,
    Device,
    Tenant,
    count_rows,
    create_tenant,
    enroll,
    make_batch,
    now_utc,
    resource_event,
)

MAX_BODY = 256 * 1024
MAX_INFLATED = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    """One collector per backend with small body limits (cheap to exceed)."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    proc = CollectorProcess(
        module_database_url,
        log,
        extra_env={
            "DEXSCOPE_MAX_BODY_BYTES": str(MAX_BODY),
            "DEXSCOPE_MAX_DECOMPRESSED_BYTES": str(MAX_INFLATED),
        },
    )
    with proc:
        yield proc


@pytest.fixture(scope="module")
def tenant(collector: CollectorProcess) -> Tenant:
    """A tenant on the module's collector."""
    return create_tenant(collector.database_url)


@pytest.fixture
def device(collector: CollectorProcess, tenant: Tenant) -> Device:
    """A freshly enrolled device (so each test counts only its own rows)."""
    return enroll(collector.url, tenant.enrollment_token, f"ws-{uuid.uuid4().hex[:6]}")


def _stored(collector: CollectorProcess, device: Device) -> tuple[int, int]:
    params = {"d": uuid.UUID(device.device_id).hex}
    where = "replace(CAST(device_id AS TEXT), '-', '') = :d"
    return (
        count_rows(collector.database_url, "events", where, **params),
        count_rows(collector.database_url, "ingest_batches", where, **params),
    )


def _post(
    collector: CollectorProcess, device: Device, body: bytes | dict, **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{collector.url}/api/v1/ingest",
        content=content,
        headers={"Content-Type": "application/json", **device.headers, **headers},
        timeout=30,
    )


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def test_gzip_batch_is_stored_and_replay_is_duplicate(collector, device) -> None:
    batch = make_batch(device.device_id, [resource_event() for _ in range(3)])
    first = _post(
        collector, device, gzip.compress(json.dumps(batch).encode()), **{"Content-Encoding": "gzip"}
    )
    assert first.json() == {"batch_id": batch["batch_id"], "accepted": 3, "duplicate": False}
    again = _post(collector, device, batch)
    assert again.json() == {"batch_id": batch["batch_id"], "accepted": 0, "duplicate": True}
    assert _stored(collector, device) == (3, 1)


def test_batch_id_reused_with_other_events_is_409(collector, device) -> None:
    batch = make_batch(device.device_id, [resource_event()])
    assert _post(collector, device, batch).status_code == 200
    batch["events"] = [resource_event()]
    _error(_post(collector, device, batch), 409, "batch_id_reused")
    assert _stored(collector, device) == (1, 1)


def test_event_resent_in_new_batch_is_not_doubled(collector, device) -> None:
    event = resource_event()
    assert _post(collector, device, make_batch(device.device_id, [event])).json()["accepted"] == 1
    second = _post(collector, device, make_batch(device.device_id, [event, resource_event()]))
    assert second.json()["accepted"] == 1
    assert _stored(collector, device) == (2, 2)


@pytest.mark.parametrize(
    ("mutate", "status", "code", "field"),
    [
        (lambda b: b.pop("sent_at"), 422, "validation_error", "sent_at"),
        (
            lambda b: b["events"][1].update(type="keylogger"),
            422,
            "unknown_event_type",
            "events[1].type",
        ),
        (
            lambda b: b["events"][0].update(cpu_percent=250),
            422,
            "validation_error",
            "events[0].cpu_percent",
        ),
        (
            lambda b: b["events"][0].update(window_title="secret.docx"),
            422,
            "validation_error",
            "events[0].window_title",
        ),
        (lambda b: b["events"][1].pop("type"), 422, "validation_error", "events[1].type"),
        (lambda b: b.update(schema_version=2), 422, "validation_error", "schema_version"),
        (lambda b: b.update(events=[]), 422, "validation_error", "events"),
        (
            lambda b: b["events"][0].update(ts="2026-01-01T00:00:00"),
            422,
            "naive_timestamp",
            "events[0].ts",
        ),
        (
            lambda b: b["events"][1].update(event_id=b["events"][0]["event_id"]),
            422,
            "duplicate_event_id",
            "events[1].event_id",
        ),
        (
            lambda b: b["events"][0].update(ts=(now_utc() + timedelta(hours=2)).isoformat()),
            422,
            "event_in_future",
            "events[0].ts",
        ),
        (
            lambda b: b["events"][0].update(ts=(now_utc() - timedelta(days=60)).isoformat()),
            422,
            "event_too_old",
            "events[0].ts",
        ),
        (lambda b: b.update(device_id=str(uuid.uuid4())), 403, "device_mismatch", "device_id"),
    ],
    ids=[
        "missing-field",
        "unknown-type",
        "out-of-range",
        "unknown-field",
        "no-type",
        "schema-version",
        "empty",
        "naive-ts",
        "dup-event-id",
        "future",
        "too-old",
        "other-device-id",
    ],
)
def test_invalid_batch_is_rejected_whole(collector, device, mutate, status, code, field) -> None:
    batch = make_batch(device.device_id, [resource_event(), resource_event()])
    mutate(batch)
    error = _error(_post(collector, device, batch), status, code)
    assert error.get("field") == field
    assert _stored(collector, device) == (0, 0)


def test_malformed_json_is_400(collector, device) -> None:
    _error(_post(collector, device, b'{"batch_id": '), 400, "malformed_json")
    assert _stored(collector, device) == (0, 0)


def test_oversized_body_is_413(collector, device) -> None:
    events = [resource_event() for _ in range(2000)]  # ~300 KiB of JSON, over MAX_BODY
    body = json.dumps(make_batch(device.device_id, events)).encode()
    assert len(body) > MAX_BODY
    _error(_post(collector, device, body), 413, "payload_too_large")
    assert _stored(collector, device) == (0, 0)


def test_gzip_bomb_is_413(collector, device) -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < MAX_BODY
    _error(
        _post(collector, device, bomb, **{"Content-Encoding": "gzip"}),
        413,
        "decompressed_too_large",
    )
    assert _stored(collector, device) == (0, 0)


def test_corrupt_gzip_and_unknown_encoding(collector, device) -> None:
    _error(
        _post(collector, device, b"\x1f\x8bnot-gzip", **{"Content-Encoding": "gzip"}),
        400,
        "malformed_gzip",
    )
    _error(
        _post(collector, device, b"{}", **{"Content-Encoding": "br"}), 415, "unsupported_encoding"
    )
    assert _stored(collector, device) == (0, 0)


def test_tokens(collector, tenant, device) -> None:
    batch = make_batch(device.device_id, [resource_event()])
    url = f"{collector.url}/api/v1/ingest"
    _error(httpx.post(url, json=batch), 401, "missing_token")
    _error(
        httpx.post(url, json=batch, headers={"Authorization": "Bearer dxd_forged"}),
        401,
        "invalid_device_token",
    )
    _error(
        httpx.post(url, json=batch, headers={"Authorization": f"Bearer {tenant.api_key}"}),
        401,
        "invalid_device_token",
    )
    other = enroll(collector.url, tenant.enrollment_token, "ws-other")
    _error(httpx.post(url, json=batch, headers=other.headers), 403, "device_mismatch")
    assert _stored(collector, device) == (0, 0)
    assert _stored(collector, other) == (0, 0)


def test_expired_device_token_is_401(collector, device) -> None:
    engine = sa.create_engine(normalise_database_url(collector.database_url))
    with engine.begin() as conn:
        from collector.devices.models import DeviceToken

        conn.execute(
            sa.update(DeviceToken)
            .where(DeviceToken.device_id == uuid.UUID(device.device_id))
            .values(expires_at=now_utc() - timedelta(minutes=1))
        )
    engine.dispose()
    batch = make_batch(device.device_id, [resource_event()])
    _error(_post(collector, device, batch), 401, "device_token_expired")
    assert _stored(collector, device) == (0, 0)


def test_device_clock_offset_is_corrected(collector, device) -> None:
    """A device whose clock runs 3 h fast: its events are stored on the collector's clock."""
    skew = timedelta(hours=3)
    true_ts = now_utc() - timedelta(minutes=5)
    event = resource_event(true_ts + skew)
    batch = make_batch(device.device_id, [event], sent_at=(now_utc() + skew).isoformat())
    assert _post(collector, device, batch).status_code == 200
    page = httpx.get(
        f"{collector.url}/api/v1/devices/{device.device_id}/events",
        headers={"Authorization": f"Bearer {_tenant_key(collector)}"},
    ).json()
    from datetime import datetime

    stored = datetime.fromisoformat(page["items"][0]["ts"])
    assert abs((stored - true_ts).total_seconds()) < 60


def _tenant_key(collector: CollectorProcess) -> str:
    from tests.support import run_cli

    return json.loads(
        run_cli(
            "admin",
            "create-api-key",
            "--role",
            "admin",
            "--database-url",
            collector.database_url,
            "--json",
        ).stdout
    )["api_key"]


def test_enrollment_errors(collector) -> None:
    url = f"{collector.url}/api/v1/enroll"
    base = {
        "enrollment_token": "dxe_nope",
        "hostname": "h",
        "os": "linux",
        "os_version": "6",
        "hardware": {},
        "agent_version": "0.1.0",
    }
    _error(httpx.post(url, json=base), 401, "invalid_enrollment_token")
    bad = dict(base, os="amiga")
    assert _error(httpx.post(url, json=bad), 422, "validation_error")["field"] == "os"
    _error(
        httpx.post(url, content=b"{", headers={"Content-Type": "application/json"}),
        422,
        "malformed_json",
    )


def test_tenant_isolation_in_inventory(collector, device, tenant) -> None:
    other = create_tenant(collector.database_url)
    theirs = enroll(collector.url, other.enrollment_token, "their-ws")
    mine = {"Authorization": f"Bearer {tenant.api_key}"}
    listed = httpx.get(f"{collector.url}/api/v1/devices?limit=1000", headers=mine).json()
    ids = {d["id"] for d in listed["items"]}
    assert device.device_id in ids and theirs.device_id not in ids
    _error(
        httpx.get(f"{collector.url}/api/v1/devices/{theirs.device_id}", headers=mine),
        404,
        "not_found",
    )
    # asking for the other tenant explicitly changes nothing for a tenant-bound key
    forced = httpx.get(f"{collector.url}/api/v1/devices?tenant={other.tenant_id}", headers=mine)
    assert theirs.device_id not in {d["id"] for d in forced.json()["items"]}
    _error(httpx.get(f"{collector.url}/api/v1/devices"), 401, "missing_token")
    _error(
        httpx.get(f"{collector.url}/api/v1/devices", headers=theirs.headers), 401, "invalid_api_key"
    )


def test_agent_config_needs_device_token(collector, device, tenant) -> None:
    ok = httpx.get(f"{collector.url}/api/v1/agent/config", headers=device.headers)
    assert ok.status_code == 200
    assert ok.json()["samplers"]["resource_sample"]["interval_s"] > 0
    _error(
        httpx.get(
            f"{collector.url}/api/v1/agent/config",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        ),
        401,
        "invalid_device_token",
    )


def test_health_ready_metrics(collector) -> None:
    assert httpx.get(f"{collector.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{collector.url}/readyz").json()["status"] == "ready"
    text = httpx.get(f"{collector.url}/metrics").text
    assert "dexscope_http_requests_total" in text
    assert (
        httpx.get(f"{collector.url}/openapi.json").json()["info"]["title"] == "DexScope collector"
    )


def test_log_has_no_tokens(collector, tenant, device) -> None:
    log = Path(collector.log_path).read_text()
    assert device.token not in log and tenant.enrollment_token not in log
