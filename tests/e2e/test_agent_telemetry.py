"""End to end, the agent's telemetry on this machine: a real crash, a real package change and
a real probe travel from a real agent process to a real collector and come back through the
API, and ``agent status`` says what was collected and from where."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.linux_env import build_deb, crash_with_sigsegv, dpkg_usable, kmsg_readable
from tests.support import CollectorProcess, Tenant, create_tenant, run_cli

pytestmark = pytest.mark.e2e


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def web_app() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health?token=secret123"
    finally:
        server.shutdown()
        server.server_close()


def _events(url: str, tenant: Tenant, device_id: str, kind: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/api/v1/devices/{device_id}/events",
        params={"type": kind, "limit": 500},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [item["data"] for item in items]


def test_crash_change_and_probe_reach_the_collector(
    database_url: str, tmp_path: Path, web_app: str
) -> None:
    if not kmsg_readable():
        pytest.skip("the crash is read from the kernel log here, which needs root")
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    state = tmp_path / "agent"
    config = tmp_path / "agent.toml"
    config.write_text(
        "[samplers.probe]\nenabled = true\ninterval_s = 60\n"
        f'targets = [{{ name = "Intranet", url = "{web_app}", timeout_s = 5 }}]\n'
    )
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        args = [
            "agent", "run", "--server", collector.url, "--enroll-token",
            tenant.enrollment_token, "--state-dir", str(state), "--config", str(config), "--once",
        ]  # fmt: skip
        run_cli(*args)  # enrolls; the log samplers take their starting positions
        crash_name = f"dx{uuid.uuid4().hex[:10]}"  # unique: the kernel log keeps earlier runs'
        crash_with_sigsegv(crash_name)
        reason = dpkg_usable()
        package = f"dexscope-e2e-{uuid.uuid4().hex[:8]}"  # unique: dpkg.log keeps earlier runs
        if reason is None:
            subprocess.run(["dpkg", "--purge", package], capture_output=True)
            deb = build_deb(tmp_path, package, "2.0-1")
            subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)
            subprocess.run(["dpkg", "--purge", package], check=True, capture_output=True)
        run_cli(*args)
        run_cli(*args)  # once more: nothing may arrive twice
        status = json.loads(run_cli("agent", "status", "--state-dir", str(state), "--json").stdout)
        device = status["device_id"]

        crashes = [
            e
            for e in _events(collector.url, tenant, device, "app_crash")
            if e["app_name"] == crash_name
        ]
        assert len(crashes) == 1, crashes
        assert crashes[0]["exception_code"] == "SIGSEGV"

        if reason is None:
            changes = [
                (e["change"], e.get("version_from"), e.get("version_to"))
                for e in _events(collector.url, tenant, device, "software_change")
                if e["name"] == package
            ]
            assert changes == [("install", None, "2.0-1"), ("removal", "2.0-1", None)]

        probes = _events(collector.url, tenant, device, "probe")
        assert len(probes) >= 1
        assert all(p["target"] == "Intranet" and p["ok"] for p in probes)
        assert all(p["http_status"] == 200 for p in probes)
        assert "secret123" not in json.dumps(probes)

        collection = status["collection"]
        assert collection["samplers"]["probe"]["targets"][0]["name"] == "Intranet"
        assert collection["samplers"]["app_crash"]["source"] in ("kmsg+apport", "journald")
        assert "pseudonym_key" not in json.dumps(collection)
        assert collection["samplers"]["logon"]["user_names"] == "hash"
        human = run_cli("agent", "status", "--state-dir", str(state)).stdout
        assert "app_crash" in human and "probes: Intranet" in human
