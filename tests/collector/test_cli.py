"""``dexscope collector`` and ``dexscope admin`` as real subprocesses."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from collector.migrate import head_revision
from tests.support import (
    CollectorProcess,
    count_rows,
    create_tenant,
    enroll,
    make_batch,
    now_utc,
    resource_event,
    run_cli,
)


def test_migrate_then_admin_commands(database_url: str) -> None:
    assert json.loads(
        run_cli("collector", "migrate", "--database-url", database_url, "--json").stdout
    ) == {"revision": head_revision()}
    made = json.loads(
        run_cli("admin", "create-tenant", "Acme", "--database-url", database_url, "--json").stdout
    )
    assert set(made) == {"tenant_id", "enrollment_token"}
    assert made["enrollment_token"].startswith("dxe_") and len(made["enrollment_token"]) >= 40
    # secrets are stored hashed, never in clear
    assert (
        count_rows(database_url, "enrollment_tokens", "token_hash = :t", t=made["enrollment_token"])
        == 0
    )

    again = run_cli("admin", "create-tenant", "Acme", "--database-url", database_url, check=False)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: a tenant named 'Acme' already exists"

    viewer = run_cli(
        "admin", "create-api-key", "--role", "viewer", "--database-url", database_url, check=False
    )
    assert viewer.returncode == 2 and "viewer must be bound to one tenant" in viewer.stderr
    key = json.loads(
        run_cli(
            "admin",
            "create-api-key",
            "--role",
            "viewer",
            "--tenant",
            made["tenant_id"],
            "--database-url",
            database_url,
            "--json",
        ).stdout
    )
    assert key["api_key"].startswith("dxk_")

    short = run_cli(
        "admin",
        "create-user",
        "ops@example.com",
        "--role",
        "admin",
        "--database-url",
        database_url,
        "--password-stdin",
        input_text="short\n",
        check=False,
    )
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    user = run_cli(
        "admin",
        "create-user",
        "Ops@Example.com",
        "--role",
        "admin",
        "--database-url",
        database_url,
        "--password-stdin",
        "--json",
        input_text="correct horse battery\n",
    )
    assert json.loads(user.stdout)["email"] == "ops@example.com"


def test_clear_errors_on_bad_input(tmp_path) -> None:
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_cli("admin", "create-tenant", "X", "--database-url", unmigrated, check=False)
    assert result.returncode == 2
    assert "run `dexscope collector migrate`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    bad = run_cli(
        "collector",
        "migrate",
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot use database")

    asof = run_cli(
        "collector",
        "jobs",
        "--once",
        "--as-of",
        "yesterday",
        "--database-url",
        unmigrated,
        check=False,
    )
    assert asof.returncode == 2 and "ISO 8601" in asof.stderr

    unknown = run_cli("collector", "frobnicate", check=False)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_jobs_retention_is_replayable_with_as_of(database_url: str, tmp_path) -> None:
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        device = enroll(collector.url, tenant.enrollment_token)
        old = resource_event(now_utc() - timedelta(days=20))
        new = resource_event(now_utc())
        response = httpx.post(
            f"{collector.url}/api/v1/ingest",
            headers=device.headers,
            json=make_batch(device.device_id, [old, new]),
        )
        assert response.json()["accepted"] == 2
    as_of = (now_utc() + timedelta(days=15)).isoformat()
    out = json.loads(
        run_cli(
            "collector", "jobs", "--once", "--as-of", as_of, "--database-url", database_url
        ).stdout
    )
    retention = out["jobs"]["retention"]
    assert retention["ok"] is True and retention["events_deleted"] == 1
    assert count_rows(database_url, "events") == 1
    # the idempotency record outlives its events (max_event_age_days + 1)
    assert count_rows(database_url, "ingest_batches") == 1
    # daily rollups live longer (13 months by default); a shorter setting trims them
    assert retention["device_days_deleted"] == 0
    assert count_rows(database_url, "device_day_scores") == 2
    # it runs once a day of as-of: an hour later it only says when it runs next
    later = (now_utc() + timedelta(days=15, hours=1)).isoformat()
    skipped = json.loads(
        run_cli(
            "collector", "jobs", "--once", "--as-of", later, "--database-url", database_url,
            env={"DEXSCOPE_ROLLUP_RETENTION_DAYS": "30"},
        ).stdout
    )["jobs"]["retention"]  # fmt: skip
    assert skipped["ok"] is True and skipped["skipped"] is True and "next_at" in skipped
    assert count_rows(database_url, "device_day_scores") == 2
    again = json.loads(
        run_cli(
            "collector", "jobs", "--once", "--as-of", as_of, "--database-url", database_url,
            env={"DEXSCOPE_ROLLUP_RETENTION_DAYS": "30", "DEXSCOPE_RETENTION_EVERY_H": "0"},
        ).stdout
    )["jobs"]["retention"]  # fmt: skip
    assert again["device_days_deleted"] == 1 and again["ok"] is True
    assert count_rows(database_url, "device_day_scores") == 1
