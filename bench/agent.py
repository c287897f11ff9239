"""The agent's steady footprint: a real agent with default settings, for minutes, against a
real collector on loopback, then offline.

Usage: ``./dev bench agent-steady [--minutes 10] [--offline-minutes 3] [--agent-cmd CMD]``
(``--agent-cmd`` runs another build of the agent, e.g. the frozen one:
``--agent-cmd dist/dexscope-agent/dexscope-agent``).

Online phase: the agent enrolls and runs with the default configuration the collector hands
out; its uploads go through a byte-counting TCP relay, so "bytes uploaded" is what crosses
the wire (HTTP headers and gzip bodies; the answers are counted apart). Every 5 s the bench
reads the agent's CPU time, RSS and PSS from /proc. Offline phase: the collector is stopped,
the agent keeps sampling into its spool; the spool's growth per hour is the growth of the
stored events' bytes (``agent status``: ``spool_bytes``); the file size is printed too.

Printed: average CPU (% of one core), CPU ms per sampler run (runs counted from the agent's
own ``agent_health`` events), steady RSS and PSS (median of the second half), bytes
uploaded per hour (and kbit/s), spool bytes per hour offline and the 7-day projection,
next to the targets of the agent telemetry issue.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import CollectorProcess, create_tenant, dexscope_cmd, free_port, run_cli

TARGETS = {"cpu_percent": 0.1, "rss_mb": 40.0, "upload_kbit_s": 1.0, "spool_7d_mb": 50.0}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class CountingRelay:
    """A TCP relay on loopback that counts the bytes each way (agent → collector, back)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._server.settimeout(0.5)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the collector is down: the agent sees a refused upload
                continue
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        """Stop accepting (open connections end when either side closes)."""
        self._stop.set()
        self._server.close()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _memory_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def _spool_disk_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("spool.db*"))


def _status(state: Path) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(
        run_cli("agent", "status", "--state-dir", str(state), "--json").stdout
    )
    return status


def _agent_argv(agent_cmd: str | None, *args: str) -> list[str]:
    return [*shlex.split(agent_cmd), *args] if agent_cmd else dexscope_cmd(*args)


def _watch(
    proc: subprocess.Popen[bytes], seconds: float, progress: Progress, label: str
) -> list[tuple[float, float, float, float]]:
    """(elapsed s, cpu s, rss MB, pss MB) every 5 s for ``seconds``."""
    samples: list[tuple[float, float, float, float]] = []
    task = progress.add_task(label, total=seconds)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited early with {proc.returncode}")
        rss, pss = _memory_mb(proc.pid)
        samples.append((elapsed, _cpu_s(proc.pid), rss, pss))
        progress.update(task, completed=elapsed)
        time.sleep(min(5.0, max(0.0, seconds - elapsed)))
    rss, pss = _memory_mb(proc.pid)
    samples.append((time.monotonic() - start, _cpu_s(proc.pid), rss, pss))
    progress.update(task, completed=seconds)
    return samples


def _sampler_runs(url: str, api_key: str, device_id: str) -> int:
    runs = 0
    after = 0
    while True:
        page = httpx.get(
            f"{url}/api/v1/devices/{device_id}/events",
            params={"type": "agent_health", "after": after, "limit": 500},
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()
        for item in page["items"]:
            runs += sum(s["runs"] for s in item["data"]["samplers"].values())
            after = item["id"]
        if len(page["items"]) < 500:
            return runs


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    """Run both phases and print the figures; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="online phase (default 10)")
    parser.add_argument("--offline-minutes", type=float, default=3.0, help="offline phase")
    parser.add_argument("--agent-cmd", help="command that runs the agent (default: this venv)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    console = Console(stderr=True)
    tmp = Path(tempfile.mkdtemp(prefix="dexscope-bench-agent-"))
    db = f"sqlite:///{tmp / 'collector.db'}"
    run_cli("collector", "migrate", "--database-url", db)
    tenant = create_tenant(db)
    state = tmp / "agent"
    log = (tmp / "agent.log").open("ab")
    port = free_port()
    with CollectorProcess(db, tmp / "collector.log", port=port) as collector:
        relay = CountingRelay(port)
        agent = subprocess.Popen(
            _agent_argv(
                args.agent_cmd,
                "agent",
                "run",
                "--server",
                f"http://127.0.0.1:{relay.port}",
                "--enroll-token",
                tenant.enrollment_token,
                "--state-dir",
                str(state),
            ),
            stdout=log,
            stderr=log,
        )
        with Progress(console=console, transient=True) as progress:
            online = _watch(agent, args.minutes * 60, progress, "agent online")
            up_bytes, down_bytes = relay.up, relay.down
            status = _status(state)
            runs = _sampler_runs(collector.url, tenant.api_key, status["device_id"])
    # collector stopped: the agent is offline now and keeps everything in its spool
    spool_before = status["spool_bytes"]
    with Progress(console=console, transient=True) as progress:
        offline = _watch(agent, args.offline_minutes * 60, progress, "agent offline")
    spool_after = _status(state)["spool_bytes"]
    spool_disk = _spool_disk_bytes(state)
    _stop(agent)
    relay.close()
    log.close()

    hours = online[-1][0] / 3600
    cpu_online = online[-1][1] - online[0][1]
    # steady state: from the first minute on (start-up imports, enrollment and the first
    # round of every sampler are counted in the overall figure only)
    warm = next((s for s in online if s[0] >= 60), online[0])
    steady_s = online[-1][0] - warm[0]
    cpu_steady = (online[-1][1] - warm[1]) / steady_s * 100 if steady_s > 0 else float("nan")
    half = [s for s in online if s[0] >= online[-1][0] / 2]
    offline_hours = offline[-1][0] / 3600
    spool_per_hour = (spool_after - spool_before) / offline_hours
    figures = {
        "agent": args.agent_cmd or "source (venv)",
        "online_minutes": round(online[-1][0] / 60, 1),
        "cpu_percent_of_one_core": round(cpu_online / online[-1][0] * 100, 4),
        "steady_cpu_percent_of_one_core": round(cpu_steady, 4),
        "startup_cpu_s": round(warm[1] - online[0][1], 2),
        "cpu_ms_per_sampler_run": round(cpu_online * 1000 / max(runs, 1), 2),
        "sampler_runs": runs,
        "steady_rss_mb": round(statistics.median(s[2] for s in half), 1),
        "steady_pss_mb": round(statistics.median(s[3] for s in half), 1),
        "peak_rss_mb": round(max(s[2] for s in online + offline), 1),
        "uploaded_bytes_per_hour": round(up_bytes / hours),
        "downloaded_bytes_per_hour": round(down_bytes / hours),
        "upload_kbit_s": round(up_bytes * 8 / 1000 / (hours * 3600), 3),
        "offline_minutes": round(offline[-1][0] / 60, 1),
        "offline_cpu_percent": round((offline[-1][1] - offline[0][1]) / offline[-1][0] * 100, 4),
        "spool_bytes_per_hour_offline": round(spool_per_hour),
        "spool_7_days_mb": round(spool_per_hour * 24 * 7 / 2**20, 1),
        "spool_file_bytes_at_end": spool_disk,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table(title=f"DexScope agent, default settings ({figures['agent']})")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("average CPU, % of one core (all)", figures["cpu_percent_of_one_core"], "≤ 0.1"),
        ("steady CPU, % of one core (after 1 min)", figures["steady_cpu_percent_of_one_core"], ""),
        ("start-up CPU seconds (first minute)", figures["startup_cpu_s"], ""),
        ("CPU ms per sampler run", figures["cpu_ms_per_sampler_run"], ""),
        ("steady RSS (MB)", figures["steady_rss_mb"], "≤ 40"),
        ("steady PSS (MB)", figures["steady_pss_mb"], ""),
        ("bytes uploaded per hour", figures["uploaded_bytes_per_hour"], "≤ 450,000"),
        ("upload kbit/s", figures["upload_kbit_s"], "≤ 1"),
        ("spool bytes per hour offline", figures["spool_bytes_per_hour_offline"], ""),
        ("7-day offline spool (MB)", figures["spool_7_days_mb"], "≤ 50"),
    ]
    for name, value, target in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value), target)
    Console().print(table)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
