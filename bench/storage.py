"""Storage benchmark: bytes per device per day in SQLite and PostgreSQL at default sampling.

Usage: ``python bench/storage.py [--devices 60] [--days 7] [--seed 3]
[--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--backends sqlite postgresql]``

For each backend: a fresh database and a real ``dexscope collector serve``; a simulated fleet
(``dexscope simulate``, the agent's default sampling) enrolled and uploaded through the
public API; the jobs run once (scoring writes the daily rollups). Then it measures what
each table takes on disk — the SQLite file's pages per table (``dbstat``) after a WAL
checkpoint, PostgreSQL's ``pg_total_relation_size`` (heap, TOAST and indexes) after
``VACUUM ANALYZE`` — divides by device-days, and projects the steady state that retention
keeps: raw events for ``raw_retention_days`` (30) and daily rollups for
``rollup_retention_days`` (396), for 100,000 devices.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.settings import Settings  # noqa: E402
from tests.support import CollectorProcess, create_tenant, run_cli  # noqa: E402

RAW = ("events", "ingest_batches")
ROLLUPS = ("device_day_scores", "device_app_days")


def _sqlite_sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    finally:
        conn.close()
    return {str(name): int(size) for name, size in rows}


def _postgres_sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def _count_events(url: str, backend: str) -> int:
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        row = pg.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def _measure(url: str, backend: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    run_cli("collector", "migrate", "--database-url", url)
    tenant = create_tenant(url)
    with CollectorProcess(url, work / f"{backend}.log") as proc:
        run_cli(
            "simulate", "--devices", str(args.devices), "--days", str(args.days),
            "--seed", str(args.seed), "--out", str(work / f"fleet-{backend}"),
            "--server", proc.url, "--enroll-token", tenant.enrollment_token,
            "--incidents", "none", timeout=3600,
        )  # fmt: skip
    jobs = json.loads(run_cli("collector", "jobs", "--once", "--database-url", url).stdout)
    device_days = int(jobs["jobs"]["scores"].get("device_days", 0))
    if backend == "sqlite":
        sizes = _sqlite_sizes(Path(url.removeprefix("sqlite:///")))
    else:
        sizes = _postgres_sizes(url)
    events = _count_events(url, backend)
    settings = Settings()
    raw = sum(sizes.get(t, 0) for t in RAW)
    rollups = sum(sizes.get(t, 0) for t in ROLLUPS)
    raw_per = raw / device_days if device_days else 0.0
    rollup_per = rollups / device_days if device_days else 0.0
    fleet = 100_000
    return {
        "backend": backend,
        "device_days": device_days,
        "events": events,
        "events_per_device_day": events / device_days if device_days else 0.0,
        "bytes_per_event": raw / events if events else 0.0,
        "raw_bytes": raw,
        "rollup_bytes": rollups,
        "total_bytes": sum(sizes.values()),
        "raw_per_device_day": raw_per,
        "rollup_per_device_day": rollup_per,
        "steady_100k_raw_gb": raw_per * fleet * settings.raw_retention_days / 1e9,
        "steady_100k_rollups_gb": rollup_per * fleet * settings.rollup_retention_days / 1e9,
        "tables": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "DEXSCOPE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="dexscope-storage-") as tmp:
        work = Path(tmp)
        for backend in args.backends:
            console.print(f"[bold]{backend}[/]: {args.devices} devices x {args.days} days…")
            if backend == "sqlite":
                results.append(_measure(f"sqlite:///{work / 'c.db'}", backend, args, work))
                continue
            name = f"dexscope_bench_storage_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"{args.postgres_url.rsplit('/', 1)[0]}/{name}"
                results.append(_measure(url, backend, args, work))
            finally:
                with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    table = Table(title=f"Storage: {args.devices} devices x {args.days} days, default sampling")
    for col in (
        "backend",
        "device-days",
        "events/device-day",
        "B/event",
        "raw B/device-day",
        "rollups B/device-day",
        "100k devices: raw (30 d)",
        "100k devices: rollups (396 d)",
    ):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["backend"],
            f"{r['device_days']:,}",
            f"{r['events_per_device_day']:,.0f}",
            f"{r['bytes_per_event']:,.0f}",
            f"{r['raw_per_device_day']:,.0f}",
            f"{r['rollup_per_device_day']:,.0f}",
            f"{r['steady_100k_raw_gb']:,.1f} GB",
            f"{r['steady_100k_rollups_gb']:,.1f} GB",
        )
    Console().print(table)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    (out / "storage.json").write_text(json.dumps({"machine": machine, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
