"""``GET /metrics`` of a real collector: request, ingest and connection-pool figures."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support import (
    CollectorProcess,
    create_tenant,
    enroll,
    make_batch,
    resource_event,
    run_cli,
)


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_metrics_show_ingest_outcomes_and_the_connection_pool(
    database_url: str, tmp_path: Path
) -> None:
    """A stored batch, a duplicate and a rejected one are counted by outcome; the pool
    gauges are there and nothing is left checked out between requests; after a
    ``collector jobs`` run (another process) each job's last run shows up."""
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    with CollectorProcess(database_url, tmp_path / "collector.log") as proc:
        device = enroll(proc.url, tenant.enrollment_token)
        batch = make_batch(device.device_id, [resource_event()])
        url = f"{proc.url}/api/v1/ingest"
        assert httpx.post(url, json=batch, headers=device.headers).status_code == 200
        assert httpx.post(url, json=batch, headers=device.headers).json()["duplicate"] is True
        bad = {**make_batch(device.device_id, [resource_event()]), "schema_version": 99}
        assert httpx.post(url, json=bad, headers=device.headers).status_code == 422
        before = httpx.get(f"{proc.url}/metrics").text
        run_cli("collector", "jobs", "--once", "--database-url", database_url)
        text = httpx.get(f"{proc.url}/metrics").text
    assert 'dexscope_job_last_ok{job="scores"}' not in before  # no run recorded yet
    for job in ("scores", "detect", "xla", "retention", "notify"):
        assert _value(text, f'dexscope_job_last_ok{{job="{job}"}}') == 1, job
        assert _value(text, f'dexscope_job_last_duration_seconds{{job="{job}"}}') >= 0
        assert _value(text, f'dexscope_job_last_success_timestamp_seconds{{job="{job}"}}') > 0
    assert _value(text, 'dexscope_ingest_batches_total{outcome="stored"}') == 1
    assert _value(text, 'dexscope_ingest_batches_total{outcome="duplicate"}') == 1
    assert re.search(r'^dexscope_ingest_batches_total\{outcome="[a-z_]+"\} 1\.0$', text, re.M)
    assert _value(text, "dexscope_ingest_events_total") == 1
    assert _value(text, "dexscope_db_pool_size") >= 1
    assert _value(text, "dexscope_db_pool_checked_out") <= 1  # at most the scrape's own
