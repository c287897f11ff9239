"""Two collector processes on different ports behind one database (the scale-out story).

Devices enroll through one process and upload through either; replays sent to the other
process are recognised; the jobs run while both serve; every event is stored once.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support import (
    CollectorProcess,
    Device,
    count_rows,
    create_tenant,
    enroll,
    make_batch,
    resource_event,
    run_cli,
)

DEVICES = 12
BATCHES = 8


def test_two_processes_ingest_into_one_database_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    """Every batch is sent to both processes at once; one stores it, the other answers
    duplicate; the jobs then see every device."""
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    with (
        CollectorProcess(database_url, tmp_path / "a.log") as a,
        CollectorProcess(database_url, tmp_path / "b.log") as b,
    ):
        devices = [
            enroll((a, b)[i % 2].url, tenant.enrollment_token, f"ws-{i:03d}")
            for i in range(DEVICES)
        ]
        batches = [
            (d, make_batch(d.device_id, [resource_event() for _ in range(5)]))
            for d in devices
            for _ in range(BATCHES)
        ]

        def send(device: Device, batch: dict[str, Any], url: str) -> bool:
            """Post one batch; True when this process stored it (not a duplicate)."""
            response = httpx.post(
                f"{url}/api/v1/ingest", json=batch, headers=device.headers, timeout=60
            )
            assert response.status_code == 200, response.text
            return not response.json()["duplicate"]

        with ThreadPoolExecutor(max_workers=16) as pool:
            pairs = [
                (pool.submit(send, d, batch, a.url), pool.submit(send, d, batch, b.url))
                for d, batch in batches
            ]
            stored = [(fa.result(), fb.result()) for fa, fb in pairs]
        jobs = json.loads(
            run_cli("collector", "jobs", "--once", "--database-url", database_url).stdout
        )
        after = httpx.get(
            f"{b.url}/api/v1/devices", headers={"Authorization": f"Bearer {tenant.api_key}"}
        )
    # each batch was sent to both processes at once: exactly one stored it
    assert all(sa + sb == 1 for sa, sb in stored), stored
    assert count_rows(database_url, "events") == len(batches) * 5
    assert count_rows(database_url, "ingest_batches") == len(batches)
    assert jobs["jobs"]["scores"]["ok"] and jobs["jobs"]["scores"]["devices"] == DEVICES
    assert after.status_code == 200 and len(after.json()["items"]) == DEVICES
