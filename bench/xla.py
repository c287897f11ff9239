"""XLA benchmark: evaluating a tenant's XLAs and rendering its monthly report at fleet scale.

Usage: ``python bench/xla.py [--devices 100000] [--days 30] [--runs 3]
[--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep] [--reuse NAME]``

Loads a fresh PostgreSQL database with the dashboard benchmark's rollups (``bench/
dashboard.py``: ``--devices`` devices, ``--days`` days ending yesterday, straight into the
tables with ``COPY``), gives 5 % of the device-days one survey answer (the
``survey_answers`` / ``survey_mean_100`` measures), and imports the six example XLAs
(``dexscope/examples/xlas.yaml``) for the tenant. Then it times, in this process:

- the ``xla`` job (every XLA, current and previous period), ``--runs`` times;
- the report of the month holding most of the data: building it (from the stored
  evaluations) and rendering it as JSON, CSV, HTML and PDF.

It prints wall time per step and the process's peak RSS. The database is dropped afterwards
unless ``--keep``; ``--reuse NAME`` measures a database kept by an earlier run (of this
benchmark or of the dashboard's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import dashboard  # noqa: E402
from collector.db import make_engine, make_sessionmaker  # noqa: E402
from collector.reports.pdf import PdfRenderError  # noqa: E402
from collector.reports.xla import build_report, render  # noqa: E402
from collector.settings import Settings  # noqa: E402
from collector.xlas.service import run_xla  # noqa: E402

EXAMPLES = REPO / "dexscope" / "examples" / "xlas.yaml"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prepare(url: str, args: argparse.Namespace, console: Console) -> str:
    """Load the rollups (unless reused), add survey answers, import the XLAs; the tenant."""
    if args.reuse:
        dashboard._dexscope("collector", "migrate", "--database-url", url)
    else:
        dashboard._create(url, args)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id::text FROM tenants ORDER BY name LIMIT 1").fetchone()
        assert row is not None
        tenant = str(row[0])
        started = time.perf_counter()
        conn.execute(
            "UPDATE device_day_scores SET measures = jsonb_build_object("
            "'survey_answers', 1, 'survey_mean_100', sentiment) "
            "WHERE sentiment IS NOT NULL AND NOT measures ? 'survey_answers'"
        )
        conn.commit()
        console.print(f"survey answers on the rollups in {time.perf_counter() - started:.1f} s")
    dashboard._dexscope(
        "admin", "import-xlas", str(EXAMPLES), "--tenant", tenant, "--database-url", url
    )
    return tenant


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "DEXSCOPE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an administrative connection; a new database is created beside it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="NAME", help="measure a database kept earlier")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    name = args.reuse or f"dexscope_bench_xla_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.postgres_url, autocommit=True)
    if not args.reuse:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres_url.rsplit('/', 1)[0]}/{name}"
    results: dict[str, Any] = {}
    try:
        tenant = _prepare(url, args, console)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        settings = Settings(database_url=url)
        with factory() as session:
            rows = session.execute(
                sa.text("SELECT count(*), min(day), max(day) FROM device_day_scores")
            ).one()
        device_days, first, last = int(rows[0]), rows[1], rows[2]
        middle = first + (last - first) / 2
        period = f"{middle.year:04d}-{middle.month:02d}"
        as_of = datetime.now(UTC)
        job_s = []
        for k in range(args.runs):
            started = time.perf_counter()
            with factory() as session:
                summary = run_xla(session, settings, as_of + timedelta(seconds=k))
            job_s.append(time.perf_counter() - started)
            console.print(f"xla job run {k + 1}: {job_s[-1]:.2f} s, {summary}")
        timings: dict[str, float] = {}
        with factory() as session:
            started = time.perf_counter()
            report = build_report(session, uuid.UUID(tenant), period)
            timings["build (stored evaluations)"] = time.perf_counter() - started
        sizes: dict[str, int] = {}
        for fmt in ("json", "csv", "html", "pdf"):
            started = time.perf_counter()
            try:
                body = render(report, fmt)
            except PdfRenderError as exc:
                console.print(f"[yellow]{fmt}: {exc}[/]")
                continue
            timings[f"render {fmt}"] = time.perf_counter() - started
            sizes[fmt] = len(body)
        engine.dispose()
        table = Table(title=f"XLAs: {args.devices:,} devices, {device_days:,} device-days")
        table.add_column("step")
        table.add_column("seconds", justify="right")
        table.add_column("note")
        table.add_row(
            f"xla job ({len(report['xlas'])} XLAs x 2 periods)",
            f"{statistics.median(job_s):.2f}",
            f"median of {len(job_s)}; min {min(job_s):.2f}, max {max(job_s):.2f}",
        )
        for step, seconds in timings.items():
            fmt = step.removeprefix("render ")
            note = f"{sizes[fmt]:,} bytes" if fmt in sizes else ""
            table.add_row(f"report {period}: {step}", f"{seconds:.2f}", note)
        table.add_row("peak RSS of this process", f"{_rss_mb():.0f} MB", "")
        Console().print(table)
        results = {
            "devices": args.devices,
            "device_days": device_days,
            "period": period,
            "xla_job_s": job_s,
            "report_s": timings,
            "report_bytes": sizes,
            "peak_rss_mb": _rss_mb(),
            "summary": report["summary"],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        }
        (REPO / "bench" / "results").mkdir(exist_ok=True)
        (REPO / "bench" / "results" / "xla.json").write_text(json.dumps(results, indent=2))
    finally:
        if not args.keep and not args.reuse:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif not args.reuse:
            console.print(f"kept database {name}")
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
