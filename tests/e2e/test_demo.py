"""``dexscope demo`` — the README's main command — as a real process: it loads the simulated
fleet, enrolls this machine's agent, imports the example XLAs and writes their report, prints
the dashboard, the login and the XLA URLs, and stops cleanly."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from collector.reports.pdf import find_chromium
from dexscope.demo import _report_period
from tests.support import REPO, count_rows, dexscope_cmd, free_port

pytestmark = pytest.mark.e2e


def _read_batch(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def _sign_in(client: httpx.Client, email: str, password: str) -> None:
    """Sign ``client`` in to the dashboard with the login the demo printed."""
    form = client.get("/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login", data={"csrf": csrf, "email": email, "password": password, "next": "/"}
    )
    assert response.status_code == 303, response.text


def test_demo_loads_a_fleet_and_this_machine_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        dexscope_cmd(
            "demo", "--port", str(port), "--data-dir", str(data), "--devices", "3", "--days", "2"
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout stops its children too
    )
    db = f"sqlite:///{data / 'collector.db'}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            if (
                (data / "demo.json").exists()
                and "fleet" in json.loads((data / "demo.json").read_text())
                and count_rows(db, "devices") >= 4
            ):  # 3 simulated + this machine's agent
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the demo never loaded its fleet and agent")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200
        # every simulated event arrived (their number depends on the weekday the demo runs)
        fleet_events = sum(
            len(json.loads(_read_batch(path))["events"])
            for path in (data / "fleet" / "batches").iterdir()
        )
        assert fleet_events > 100
        assert count_rows(db, "events") >= fleet_events
        # the demo runs the collector's jobs: the fleet gets its scores
        deadline = time.monotonic() + 90
        while count_rows(db, "device_day_scores") == 0 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(1)
        assert count_rows(db, "device_day_scores") > 0
        # then imports the example XLAs and writes their report (evaluating its period)
        state = json.loads((data / "demo.json").read_text())
        period = _report_period(state)
        pdf = data / f"xla-report-{period}.pdf"
        chromium = find_chromium() is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            if count_rows(db, "xla_evaluations", "period = :p", p=period) >= 6 and (
                not chromium or (pdf.exists() and pdf.read_bytes().rstrip().endswith(b"%%EOF"))
            ):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the demo never evaluated its XLAs nor wrote their report")
        assert count_rows(db, "xla_definitions") == 6  # the demo tenant is the only one
        # then it says it is running (and writes running.json): only now is Ctrl-C "stop a
        # running demo" rather than "interrupt its start" (under load, the two are far apart)
        deadline = time.monotonic() + 60
        while not (data / "running.json").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.5)
        running = json.loads((data / "running.json").read_text())
        assert running["dashboard_url"] == f"http://127.0.0.1:{port}"
        if chromium:
            assert pdf.read_bytes().startswith(b"%PDF-")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _sign_in(client, state["email"], state["password"])
            report = client.get(
                "/api/v1/reports/xla",
                params={"tenant": state["tenant_id"], "period": period, "format": "json"},
            )
            assert report.status_code == 200, report.text
            assert len(report.json()["xlas"]) == 6
            assert client.get("/xlas").status_code == 200
            assert client.get("/msp").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # the demo and what it started (collector, agent, jobs), then its pipes to the end
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            message = f"the demo did not stop within 60 s of Ctrl-C:\n{err[-3000:]}"
            raise AssertionError(message) from None
    assert proc.returncode == 0, err
    assert not (data / "running.json").exists()  # a stopped demo is not running
    assert "DexScope demo running" in err and "admin@demo.dexscope" in err
    assert "XLAs: 6 example XLAs for the demo tenant (6 created" in err
    assert f"/xlas — MSP overview: http://127.0.0.1:{port}/msp" in err
    assert f"period={period}&format=html" in err and f"period={period}&format=pdf" in err
    assert (f"written to {pdf}" if chromium else "no PDF report:") in err
    state = json.loads((data / "demo.json").read_text())
    assert state["fleet"]["devices"] == 3
