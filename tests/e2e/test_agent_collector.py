"""End to end: a real collector process and a real agent process over real HTTP.

Run on SQLite and on PostgreSQL. The invariant checked after every scenario: every event
the agent appended to its spool (``events_appended_total``, minus what the spool's cap
policy dropped) is stored by the collector exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    REPO,
    CollectorProcess,
    Tenant,
    count_rows,
    create_tenant,
    dexscope_cmd,
    free_port,
    run_cli,
)

pytestmark = pytest.mark.e2e

FAST_AGENT = """
[upload]
max_batch_events = {batch}
max_batch_age_s = 0.3
backoff_base_s = 0.2
backoff_max_s = 1.0
timeout_s = 5

[samplers.resource_sample]
enabled = true
interval_s = {interval}

[samplers.agent_health]
enabled = true
interval_s = 1.0

[samplers.boot]
enabled = true
interval_s = 60
"""


def _status(state_dir: Path) -> dict[str, Any]:
    out = run_cli("agent", "status", "--state-dir", str(state_dir), "--json").stdout
    status: dict[str, Any] = json.loads(out)
    return status


def _stored_events(database_url: str, device_id: str) -> int:
    return count_rows(
        database_url,
        "events",
        "replace(CAST(device_id AS TEXT), '-', '') = :d",
        d=uuid.UUID(device_id).hex,
    )


def _distinct_event_ids(database_url: str, device_id: str) -> int:
    return count_rows(
        database_url,
        "(SELECT DISTINCT event_id FROM events WHERE "
        "replace(CAST(device_id AS TEXT), '-', '') = :d) AS ids",
        d=uuid.UUID(device_id).hex,
    )


def _assert_exactly_once(database_url: str, state_dir: Path) -> int:
    status = _status(state_dir)
    assert status["spool_events"] == 0, status
    expected = status["events_appended_total"] - status["dropped_events_total"]
    stored = _stored_events(database_url, status["device_id"])
    assert stored == expected, status
    assert _distinct_event_ids(database_url, status["device_id"]) == stored
    return stored


def _agent_args(url: str, tenant: Tenant, state_dir: Path, *extra: str) -> list[str]:
    return [
        "agent",
        "run",
        "--server",
        url,
        "--enroll-token",
        tenant.enrollment_token,
        "--state-dir",
        str(state_dir),
        *extra,
    ]


def _start_agent(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    try:
        return subprocess.Popen(
            dexscope_cmd(*args), stdout=handle, stderr=handle, cwd=REPO, env=dict(os.environ)
        )
    finally:
        handle.close()


def _drain(url: str, tenant: Tenant, state_dir: Path, config: Path) -> None:
    """One more ``--once`` round so whatever is still spooled gets uploaded."""
    run_cli(*_agent_args(url, tenant, state_dir, "--once", "--config", str(config)))


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def tenant_db(database_url: str) -> tuple[str, Tenant]:
    run_cli("collector", "migrate", "--database-url", database_url)
    return database_url, create_tenant(database_url)


def test_agent_once_reports_this_machine(tenant_db, tmp_path: Path) -> None:
    database_url, tenant = tenant_db
    state = tmp_path / "agent"
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        first = run_cli(
            *_agent_args(
                collector.url,
                tenant,
                state,
                "--once",
                "--tag",
                "site=lab",
                "--persona-hint",
                "developer",
            )
        )
        assert first.returncode == 0
        api = {"Authorization": f"Bearer {tenant.api_key}"}
        devices = httpx.get(f"{collector.url}/api/v1/devices", headers=api).json()
        assert devices["total"] == 1
        device = devices["items"][0]
        assert device["hostname"] == socket.gethostname()
        assert device["os"] == "linux"
        assert device["tags"] == {"site": "lab"}
        assert device["persona"] == "developer"
        assert device["last_seen_at"] is not None

        detail = httpx.get(f"{collector.url}/api/v1/devices/{device['id']}", headers=api).json()
        assert {"resource_sample", "agent_health"} <= set(detail["events"])
        boots = detail["events"].get("boot", {}).get("count", 0)
        assert boots <= 1

        # A second round reuses the identity (no re-enrollment) and reports the boot once.
        run_cli(*_agent_args(collector.url, tenant, state, "--once"))
        devices = httpx.get(f"{collector.url}/api/v1/devices", headers=api).json()
        assert devices["total"] == 1
        detail = httpx.get(f"{collector.url}/api/v1/devices/{device['id']}", headers=api).json()
        assert detail["events"].get("boot", {}).get("count", 0) == boots
        assert detail["events"]["resource_sample"]["count"] >= 2

        status = _status(state)
        assert status["device_id"] == device["id"]
        assert status["server"] == collector.url
        assert status["last_upload_at"] is not None
        _assert_exactly_once(database_url, state)
    # the identity file holds the device token: owner-only
    identity = state / "identity.json"
    assert identity.stat().st_mode & 0o077 == 0
    assert state.stat().st_mode & 0o077 == 0


def test_refused_enrollment_exits_non_zero(tenant_db, tmp_path: Path) -> None:
    database_url, _tenant = tenant_db
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        result = run_cli(
            "agent",
            "run",
            "--server",
            collector.url,
            "--enroll-token",
            "dxe_wrong",
            "--state-dir",
            str(tmp_path / "a"),
            "--once",
            check=False,
        )
    assert result.returncode == 2
    assert "enrollment refused" in result.stderr
    assert "dxe_wrong" not in result.stderr


def test_unreachable_collector_at_enrollment(tmp_path: Path) -> None:
    result = run_cli(
        "agent",
        "run",
        "--server",
        f"http://127.0.0.1:{free_port()}",
        "--enroll-token",
        "dxe_x",
        "--state-dir",
        str(tmp_path / "a"),
        "--once",
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.strip()


def test_outage_spools_then_delivers_exactly_once(tenant_db, tmp_path: Path) -> None:
    database_url, tenant = tenant_db
    config = tmp_path / "agent.toml"
    config.write_text(FAST_AGENT.format(batch=20, interval=0.2))
    state = tmp_path / "agent"
    port = free_port()
    collector = CollectorProcess(database_url, tmp_path / "collector.log", port=port).start()
    try:
        agent = _start_agent(
            _agent_args(collector.url, tenant, state, "--config", str(config)),
            tmp_path / "agent.log",
        )
        try:
            _wait(
                lambda: (
                    (state / "identity.json").exists()
                    and _status(state).get("last_upload_at") is not None
                ),
                30,
                "a first upload",
            )
            collector.stop()
            during = _status(state)["events_appended_total"]
            _wait(
                lambda: (
                    _status(state)["spool_events"] >= 15
                    and _status(state)["events_appended_total"] > during
                ),
                30,
                "events sampled during the outage to pile up",
            )
            outage = _status(state)
            assert outage["events_appended_total"] > during
            assert outage["last_error"]
            assert agent.poll() is None, "the agent must keep running through the outage"
            collector.start()
            _wait(lambda: _status(state)["spool_events"] < 5, 30, "the spool to drain")
        finally:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0
        _drain(collector.url, tenant, state, config)
        stored = _assert_exactly_once(database_url, state)
        assert stored >= outage["events_appended_total"]
    finally:
        collector.stop()


def test_kill_9_during_uploads_loses_and_doubles_nothing(tenant_db, tmp_path: Path) -> None:
    database_url, tenant = tenant_db
    config = tmp_path / "agent.toml"
    config.write_text(FAST_AGENT.format(batch=10, interval=0.05))
    state = tmp_path / "agent"
    collector = CollectorProcess(database_url, tmp_path / "collector.log").start()
    try:
        run_cli(*_agent_args(collector.url, tenant, state, "--once", "--config", str(config)))
        collector.stop()
        # Build a backlog while the collector is down, so uploads are in flight when we kill.
        agent = _start_agent(
            _agent_args(collector.url, tenant, state, "--config", str(config)),
            tmp_path / "agent.log",
        )
        _wait(lambda: _status(state)["spool_events"] >= 60, 60, "a backlog")
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        collector.start()
        rng = random.Random(7)
        kills = 0
        for _ in range(6):
            agent = _start_agent(
                _agent_args(collector.url, tenant, state, "--config", str(config)),
                tmp_path / "agent.log",
            )
            time.sleep(rng.uniform(0.8, 2.0))
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            kills += 1
        assert kills == 6
        _drain(collector.url, tenant, state, config)
        stored = _assert_exactly_once(database_url, state)
        assert stored >= 60
    finally:
        collector.stop()
