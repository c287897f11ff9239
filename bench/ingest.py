"""Ingest benchmark: batches of 500 events into a real collector process (one worker).

Usage: ``./dev bench [--batches N] [--concurrency C] [--backend sqlite|postgresql|both]``

For each backend it creates a fresh database, starts ``dexscope collector serve`` (one
process) on loopback, enrolls devices through the public API, then posts N gzip batches of
500 realistic events (a mix of resource, app and health samples) from C client threads.
It prints events/s, batches/s, latency percentiles, errors, and the collector's CPU time
and peak RSS. Bounded in count and time; talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import (
    CollectorProcess,
    create_tenant,
    enroll,
    postgres_database,
    run_cli,
)

EVENTS_PER_BATCH = 500


def _events(n: int, start: datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = (start + timedelta(seconds=i)).isoformat()
        kind = i % 10
        base = {"event_id": str(uuid.uuid4()), "ts": ts}
        if kind < 6:
            out.append(
                {
                    **base,
                    "type": "resource_sample",
                    "interval_s": 60,
                    "cpu_percent": 17.5,
                    "memory_percent": 62.0,
                    "swap_percent": 3.0,
                    "disk_percent": 71.0,
                    "cpu_pressure_s": 0.8,
                    "memory_pressure_s": 0.1,
                    "io_pressure_s": 2.3,
                }
            )
        elif kind < 9:
            out.append(
                {
                    **base,
                    "type": "app_resource",
                    "app_name": "outlook.exe",
                    "app_version": "16.0.17928",
                    "interval_s": 60,
                    "process_count": 3,
                    "cpu_s": 4.2,
                    "rss_mb": 412.0,
                    "foreground_s": 35.0,
                }
            )
        else:
            out.append(
                {
                    **base,
                    "type": "app_hang",
                    "app_name": "teams.exe",
                    "app_version": "24215.1007",
                    "hang_duration_s": 7.5,
                    "source": "window_probe",
                }
            )
    return out


def _bench_backend(
    name: str, database_url: str, batches: int, concurrency: int, workdir: Path, console: Console
) -> dict[str, Any]:
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    with CollectorProcess(database_url, workdir / f"{name}.log") as collector:
        assert collector.proc is not None
        proc = psutil.Process(collector.proc.pid)
        devices = [
            enroll(collector.url, tenant.enrollment_token, f"bench-{i}") for i in range(concurrency)
        ]
        start = datetime.now(UTC) - timedelta(hours=6)
        bodies = []
        for i in range(batches):
            device = devices[i % concurrency]
            batch = {
                "batch_id": str(uuid.uuid4()),
                "device_id": device.device_id,
                "agent_version": "bench",
                "schema_version": 1,
                "sent_at": datetime.now(UTC).isoformat(),
                "events": _events(EVENTS_PER_BATCH, start + timedelta(minutes=i)),
            }
            bodies.append((device, gzip.compress(json.dumps(batch).encode(), 6)))
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()
        peak_rss = proc.memory_info().rss
        cpu_before = proc.cpu_times()

        def send(item: tuple[Any, bytes], client: httpx.Client) -> None:
            nonlocal errors, peak_rss
            device, body = item
            t0 = time.perf_counter()
            r = client.post(
                f"{collector.url}/api/v1/ingest",
                content=body,
                headers={
                    **device.headers,
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                },
            )
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if r.status_code != 200 or r.json()["accepted"] != EVENTS_PER_BATCH:
                    errors += 1
                peak_rss = max(peak_rss, proc.memory_info().rss)

        with ExitStack() as stack, Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{name}: {batches} batches", total=batches)
            clients = [stack.enter_context(httpx.Client(timeout=60)) for _ in range(concurrency)]
            pool = stack.enter_context(ThreadPoolExecutor(concurrency))
            wall0 = time.perf_counter()
            futures = [
                pool.submit(send, item, clients[i % concurrency]) for i, item in enumerate(bodies)
            ]
            for f in futures:
                f.result()
                progress.advance(task)
            wall = time.perf_counter() - wall0
        cpu_after = proc.cpu_times()
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "backend": name,
        "batches": batches,
        "events": batches * EVENTS_PER_BATCH,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "events_per_s": round(batches * EVENTS_PER_BATCH / wall),
        "batches_per_s": round(batches / wall, 1),
        "p50_ms": round(q[49] * 1000, 1),
        "p95_ms": round(q[94] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "errors": errors,
        "collector_cpu_s": round(cpu_s, 1),
        "collector_peak_rss_mb": round(peak_rss / 2**20),
    }


def main() -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.batches <= 10_000 or not 1 <= args.concurrency <= 64:
        parser.error("--batches 1..10000, --concurrency 1..64")
    console = Console(stderr=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.backend in ("sqlite", "both"):
            results.append(
                _bench_backend(
                    "sqlite",
                    f"sqlite:///{workdir / 'bench.db'}",
                    args.batches,
                    args.concurrency,
                    workdir,
                    console,
                )
            )
        if args.backend in ("postgresql", "both"):
            pg = os.environ.get(
                "DEXSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            )
            from collector.settings import normalise_database_url

            with postgres_database(normalise_database_url(pg)) as url:
                results.append(
                    _bench_backend(
                        "postgresql", url, args.batches, args.concurrency, workdir, console
                    )
                )
    machine = (
        f"{platform.node()}: {platform.processor() or platform.machine()}, "
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}"
    )
    table = Table(title=f"Ingest, one collector process, batches of {EVENTS_PER_BATCH} events")
    table.add_column("figure")
    for row in results:
        table.add_column(str(row["backend"]), justify="right")
    for key in results[0]:
        if key != "backend":
            table.add_row(key, *(str(row[key]) for row in results))
    console.print(table)
    console.print(machine)
    if args.json:
        print(json.dumps({"machine": machine, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
