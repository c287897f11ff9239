"""Agent footprint: memory after imports, and a real one-shot run against a real collector.

Usage: ``./dev bench agent`` (or ``python bench/agent_footprint.py [--rounds N]``).

1. RSS of a fresh interpreter after importing every agent module and ``dexscope.cli``
   (what the running agent carries before it samples anything).
2. ``dexscope agent run --once`` (enroll, one round of every sampler, one upload) against a
   collector on loopback with SQLite: wall time and peak RSS of the agent process, N times.
Bounded and local: one collector on 127.0.0.1, N agent runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import CollectorProcess, create_tenant, dexscope_cmd, run_cli

_IMPORTS = (
    "import agent.main, agent.cli, dexscope.cli, psutil; "
    "from agent.samplers import load_builtin_samplers; load_builtin_samplers(); "
    "print(psutil.Process().memory_info().rss)"
)


def _import_rss_mb() -> float:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True
    ).stdout
    return int(out) / 2**20


def _one_shot(url: str, token: str, state: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, sampled every 10 ms) of one ``agent run --once``."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        dexscope_cmd(
            "agent",
            "run",
            "--server",
            url,
            "--enroll-token",
            token,
            "--state-dir",
            str(state),
            "--once",
            "--log-level",
            "warning",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"agent run failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, peak / 2**20


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds 1..50")
    console = Console(stderr=True)
    imports = [_import_rss_mb() for _ in range(3)]
    walls, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'c.db'}"
        run_cli("collector", "migrate", "--database-url", db)
        tenant = create_tenant(db)
        with (
            CollectorProcess(db, work / "collector.log") as collector,
            console.status("agent runs…"),
        ):
            for i in range(args.rounds):
                wall, peak = _one_shot(collector.url, tenant.enrollment_token, work / f"a{i}")
                walls.append(wall)
                peaks.append(peak)
    result = {
        "import_rss_mb": round(statistics.median(imports), 1),
        "once_wall_s_median": round(statistics.median(walls), 2),
        "once_peak_rss_mb_median": round(statistics.median(peaks), 1),
        "once_peak_rss_mb_max": round(max(peaks), 1),
        "rounds": args.rounds,
    }
    machine = (
        f"{platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
    table = Table(title="Agent footprint")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(machine)
    if args.json:
        print(json.dumps({"machine": machine, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
