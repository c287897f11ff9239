"""Test support: real databases, real collector processes, real CLI calls."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent


def dexscope_cmd(*args: str) -> list[str]:
    """The command line running ``dexscope`` from this checkout's interpreter."""
    return [sys.executable, "-m", "dexscope", *args]


def run_cli(
    *args: str,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``dexscope ARGS`` as a real subprocess."""
    result = subprocess.run(
        dexscope_cmd(*args),
        input=input_text,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dexscope {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Tenant:
    """A tenant made through the real CLI."""

    tenant_id: str
    enrollment_token: str
    api_key: str


def create_tenant(database_url: str, name: str | None = None) -> Tenant:
    """Create a tenant and an admin API key bound to it, with ``dexscope admin``."""
    name = name or f"tenant-{uuid.uuid4().hex[:8]}"
    made = json.loads(
        run_cli("admin", "create-tenant", name, "--database-url", database_url, "--json").stdout
    )
    key = json.loads(
        run_cli(
            "admin",
            "create-api-key",
            "--role",
            "admin",
            "--tenant",
            made["tenant_id"],
            "--database-url",
            database_url,
            "--json",
        ).stdout
    )
    return Tenant(made["tenant_id"], made["enrollment_token"], key["api_key"])


class CollectorProcess:
    """``dexscope collector serve`` running as a child process on a loopback port."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> CollectorProcess:
        """Start and wait until ``/readyz`` answers 200."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            dexscope_cmd(
                "collector",
                "serve",
                "--database-url",
                self.database_url,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ),
            stdout=log,
            stderr=log,
            cwd=REPO,
            env={**os.environ, **self.extra_env},
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"collector exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"collector not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop with SIGTERM (SIGKILL if it lingers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"dexscope_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(admin_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def count_rows(database_url: str, table: str, where: str = "", **params: Any) -> int:
    """``SELECT count(*)`` on a table of the collector's database."""
    from collector.settings import normalise_database_url

    engine = sa.create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as conn:
            sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int(conn.execute(sa.text(sql), params).scalar_one())
    finally:
        engine.dispose()


def now_utc() -> Any:
    """The current time, UTC-aware."""
    from datetime import UTC, datetime

    return datetime.now(UTC)


def resource_event(ts: Any = None, **fields: Any) -> dict[str, Any]:
    """A valid ``resource_sample`` event in wire JSON."""
    return {
        "type": "resource_sample",
        "event_id": str(uuid.uuid4()),
        "ts": (ts or now_utc()).isoformat(),
        "interval_s": 60,
        "cpu_percent": 12.5,
        "memory_percent": 41.0,
        **fields,
    }


def make_batch(device_id: str, events: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A wire v1 batch around ``events``."""
    return {
        "batch_id": str(uuid.uuid4()),
        "device_id": device_id,
        "agent_version": "0.1.0",
        "schema_version": 1,
        "sent_at": now_utc().isoformat(),
        "events": events,
        **fields,
    }


@dataclass
class Device:
    """An enrolled device: its id and token."""

    device_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header of this device."""
        return {"Authorization": f"Bearer {self.token}"}


def enroll(
    url: str,
    enrollment_token: str,
    hostname: str = "ws-001",
    tags: dict[str, str] | None = None,
) -> Device:
    """Enroll a device through the public API (with installer ``tags`` if given)."""
    body: dict[str, Any] = {
        "enrollment_token": enrollment_token,
        "hostname": hostname,
        "os": "linux",
        "os_version": "6.1",
        "hardware": {"cpu_count": 4},
        "agent_version": "0.1.0",
    }
    if tags is not None:
        body["tags"] = tags
    response = httpx.post(f"{url}/api/v1/enroll", json=body, timeout=30)
    assert response.status_code == 201, response.text
    body = response.json()
    return Device(body["device_id"], body["device_token"])


def expect(response: httpx.Response, *codes: int) -> Any:
    """Assert ``response`` has one of ``codes`` (default 200/201), naming the request if
    not; its JSON body (None when empty)."""
    assert response.status_code in (codes or (200, 201)), (
        f"{response.request.method} {response.request.url}: "
        f"{response.status_code} {response.text[:500]}"
    )
    return response.json() if response.content else None


def dashboard_login(url: str, email: str, password: str) -> str:
    """Sign in through the dashboard's form (with its CSRF cookie); the session cookie."""
    from collector.auth import SESSION_COOKIE
    from collector.dashboard.router import LOGIN_CSRF_COOKIE

    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/login").raise_for_status()
        csrf = client.cookies[LOGIN_CSRF_COOKIE]
        response = client.post(
            "/login", data={"email": email, "password": password, "csrf": csrf, "next": "/"}
        )
        assert response.status_code == 303, response.text[:500]
        return response.cookies[SESSION_COOKIE]
