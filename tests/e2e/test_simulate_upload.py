"""End to end: ``dexscope simulate --server`` enrolls and uploads a fleet to a real collector.

Run on SQLite and on PostgreSQL. Checks: the devices appear with their personas, every
generated event is stored once, and running the same upload again stores nothing new.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support import CollectorProcess, count_rows, create_tenant, run_cli

pytestmark = pytest.mark.e2e


def test_simulated_fleet_uploads_once(database_url: str, tmp_path: Path) -> None:
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    out = tmp_path / "fleet"
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        args = [
            "simulate",
            "--devices",
            "3",
            "--days",
            "2",
            "--seed",
            "5",
            "--end",
            end,
            "--out",
            str(out),
            "--server",
            collector.url,
            "--enroll-token",
            tenant.enrollment_token,
            "--json",
        ]
        first = json.loads(run_cli(*args).stdout)
        generated = first["events"]
        assert generated > 0
        assert first["upload"]["enrolled"] == 3
        assert first["upload"]["accepted"] == generated
        assert first["upload"]["duplicates"] == 0

        response = httpx.get(
            f"{collector.url}/api/v1/devices",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == 3
        simulated = {d["hostname"]: d for d in json.loads((out / "devices.json").read_text())}
        for device in page["items"]:
            truth = simulated[device["hostname"]]
            assert device["persona"] == truth["persona"]
            assert device["tags"] == {"site": truth["site"]}
            assert device["hardware"]["cpu_count"] == truth["cpu_count"]
        assert count_rows(database_url, "events") == generated

        again = json.loads(run_cli(*args).stdout)
        assert again["events"] == generated
        assert again["upload"]["enrolled"] == 0
        assert again["upload"]["reused"] == 3
        assert again["upload"]["accepted"] == 0
        assert again["upload"]["duplicates"] == again["batches"] == first["batches"]
        assert count_rows(database_url, "events") == generated
        assert count_rows(database_url, "devices") == 3
