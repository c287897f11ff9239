"""Ingest benchmark: N concurrent agents (async httpx) against a real collector on loopback.

Usage: ``./dev bench ingest [--agents 200] [--batches N] [--rate EVENTS_PER_S] [--workers W]
[--backend sqlite|postgresql|both] [--json]``

For each backend it creates a fresh database, starts ``dexscope collector serve --workers W``
on loopback, enrolls one device per agent through the public API, then plays the agents:
each posts its share of N gzip batches of 500 realistic events (a mix of resource, app and
health samples) with its own device token. Without ``--rate`` every agent sends its next
batch as soon as the previous one is answered (closed loop: the collector's ceiling, and
latency = agents / throughput by Little's law). With ``--rate R`` the agents together offer
R events/s, each on its own evenly spaced schedule (open loop, as real agents upload), so
latency is measured at a sustained load. It prints events/s, batches/s, latency
percentiles, errors, and the collector's CPU (all its processes) and peak RSS (summed over
its processes). Bounded in count and time; talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import REPO, create_tenant, dexscope_cmd, free_port, postgres_database, run_cli

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


class _Collector:
    """``dexscope collector serve --workers W`` as a child process, ready on loopback."""

    def __init__(self, database_url: str, log_path: Path, workers: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["--database-url", database_url, "--port", str(self.port)]
        if workers is not None:
            args += ["--workers", str(workers)]
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                dexscope_cmd("collector", "serve", *args, "--log-level", "warning"),
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
        self.log_path = log_path
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"collector exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"collector not ready: {log_path.read_text()[-2000:]}")
        time.sleep(1.0)  # let every worker finish starting before measuring
        self.ps = psutil.Process(self.proc.pid)

    def processes(self) -> list[psutil.Process]:
        """The serving process and its workers."""
        return [self.ps, *self.ps.children(recursive=True)]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _postgres() -> list[psutil.Process]:
    """PostgreSQL's server processes on this machine (all databases: an upper bound)."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


async def _enroll(client: httpx.AsyncClient, url: str, token: str, n: int) -> list[dict[str, str]]:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> dict[str, str]:
        async with sem:
            r = await client.post(
                f"{url}/api/v1/enroll",
                json={
                    "enrollment_token": token,
                    "hostname": f"bench-{i}",
                    "os": "linux",
                    "os_version": "6.1",
                    "hardware": {"cpu_count": 4},
                    "agent_version": "bench",
                },
            )
            assert r.status_code == 201, r.text
            return dict(r.json())

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def _bodies(devices: list[dict[str, str]], batches: int) -> list[list[bytes]]:
    """Each agent's gzip bodies, in sending order."""
    per_agent: list[list[bytes]] = [[] for _ in devices]
    start = datetime.now(UTC) - timedelta(minutes=batches, hours=1)  # all in the past
    for i in range(batches):
        agent = i % len(devices)
        batch = {
            "batch_id": str(uuid.uuid4()),
            "device_id": devices[agent]["device_id"],
            "agent_version": "bench",
            "schema_version": 1,
            "sent_at": datetime.now(UTC).isoformat(),
            "events": _events(EVENTS_PER_BATCH, start + timedelta(minutes=i)),
        }
        per_agent[agent].append(gzip.compress(json.dumps(batch).encode(), 6))
    return per_agent


async def _play(
    url: str, devices: list[dict[str, str]], bodies: list[list[bytes]], rate: float | None
) -> tuple[list[float], int, float, list[str]]:
    latencies: list[float] = []
    problems: list[str] = []
    agents = len(devices)
    limits = httpx.Limits(max_connections=agents, max_keepalive_connections=agents)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        # one batch interval per agent at the offered rate; agents start evenly staggered
        interval = agents * EVENTS_PER_BATCH / rate if rate else 0.0
        wall0 = time.perf_counter()

        async def agent(j: int) -> None:
            headers = {
                "Authorization": f"Bearer {devices[j]['device_token']}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
            }
            for k, body in enumerate(bodies[j]):
                if interval:
                    due = wall0 + (j / agents + k) * interval
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"{url}/api/v1/ingest", content=body, headers=headers)
                    ok = r.status_code == 200 and r.json().get("accepted") == EVENTS_PER_BATCH
                    if not ok:
                        problems.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    problems.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(agent(j) for j in range(agents)))
        wall = time.perf_counter() - wall0
    return latencies, len(problems), wall, problems[:5]


def _bench_backend(
    name: str,
    database_url: str,
    args: argparse.Namespace,
    workdir: Path,
    console: Console,
) -> dict[str, Any]:
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    collector = _Collector(database_url, workdir / f"{name}.log", args.workers)
    try:

        async def enroll_all() -> list[dict[str, str]]:
            async with httpx.AsyncClient(timeout=60) as client:
                return await _enroll(client, collector.url, tenant.enrollment_token, args.agents)

        devices = asyncio.run(enroll_all())
        console.print(f"{name}: {len(devices)} devices enrolled, building {args.batches} bodies")
        bodies = _bodies(devices, args.batches)
        procs = collector.processes()
        peak_rss = _rss(procs)
        cpu_before = _cpu(procs)
        db_cpu0 = sum(_cpu(_postgres()).values()) if name == "postgresql" else 0.0
        me = psutil.Process()
        client_cpu0 = sum(me.cpu_times()[:2])
        stop = False

        async def run() -> tuple[list[float], int, float, list[str]]:
            nonlocal peak_rss

            async def sample() -> None:
                nonlocal peak_rss
                while not stop:
                    peak_rss = max(peak_rss, _rss(procs))
                    await asyncio.sleep(0.25)

            sampler = asyncio.create_task(sample())
            try:
                return await _play(collector.url, devices, bodies, args.rate)
            finally:
                sampler.cancel()

        console.print(f"{name}: {args.agents} agents posting")
        latencies, errors, wall, problems = asyncio.run(run())
        stop = True
        cpu_after = _cpu(procs)
        client_cpu = sum(me.cpu_times()[:2]) - client_cpu0
        db_cpu = sum(_cpu(_postgres()).values()) - db_cpu0 if name == "postgresql" else None
    finally:
        collector.stop()
    cpu_s = sum(cpu_after[pid] - cpu_before[pid] for pid in cpu_after if pid in cpu_before)
    q = statistics.quantiles(sorted(latencies), n=100)
    events = args.batches * EVENTS_PER_BATCH
    for p in problems:
        console.print(f"[red]{name}: {p}[/red]")
    return {
        "backend": name,
        "workers": args.workers or "default",
        "agents": args.agents,
        "offered_events_per_s": round(args.rate) if args.rate else "max",
        "batches": args.batches,
        "events": events,
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall),
        "batches_per_s": round(args.batches / wall, 1),
        "p50_ms": round(q[49] * 1000, 1),
        "p95_ms": round(q[94] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "errors": errors,
        "collector_cpu_s": round(cpu_s, 1),
        "collector_cpu_cores": round(cpu_s / wall, 2),
        "collector_peak_rss_mb": round(peak_rss / 2**20),
        "client_cpu_s": round(client_cpu, 1),
        "postgres_server_cpu_s": round(db_cpu, 1) if db_cpu is not None else "-",
    }


def main() -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=200, help="concurrent agents (devices)")
    parser.add_argument(
        "--rate", type=float, default=None, help="offered events/s in all (default: closed loop)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="collector workers (default: serve's default)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.batches <= 20_000 or not 1 <= args.agents <= 1000:
        parser.error("--batches 1..20000, --agents 1..1000")
    if args.batches < args.agents:
        parser.error("--batches must be at least --agents (every agent sends)")
    console = Console(stderr=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.backend in ("sqlite", "both"):
            url = f"sqlite:///{workdir / 'bench.db'}"
            results.append(_bench_backend("sqlite", url, args, workdir, console))
        if args.backend in ("postgresql", "both"):
            pg = os.environ.get(
                "DEXSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            )
            from collector.settings import normalise_database_url

            with postgres_database(normalise_database_url(pg)) as url:
                results.append(_bench_backend("postgresql", url, args, workdir, console))
    machine = (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"1-min load average after the run {os.getloadavg()[0]:.2f}"
    )
    table = Table(title=f"Ingest, {args.agents} agents, batches of {EVENTS_PER_BATCH} events")
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
