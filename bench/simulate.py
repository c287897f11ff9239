"""Speed of the fleet simulator: ``dexscope simulate`` writing a fleet to a folder.

Usage: ``./dev bench simulate [--devices 1000] [--days 30] [--workers N]``. Runs the real
command as a subprocess into a temporary folder and prints its wall time, the CPU time of
the process and its children, events, batches and bytes written, and events per second.
Uploading is measured by the ingest benchmark (the collector is the bottleneck there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import dexscope_cmd


def main() -> int:
    """Run the simulator once and print the figures; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="dexscope-bench-simulate-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        dexscope_cmd(
            "simulate",
            "--devices",
            str(args.devices),
            "--days",
            str(args.days),
            "--seed",
            "1",
            "--out",
            str(out / "fleet"),
            "--workers",
            str(args.workers),
            "--json",
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(result.stdout)
    disk = sum(p.stat().st_size for p in (out / "fleet").rglob("*") if p.is_file())
    shutil.rmtree(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    table = Table(
        title=f"dexscope simulate {args.devices} devices x {args.days} days, "
        f"{args.workers} workers ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("wall time", f"{wall:.1f} s")
    table.add_row("CPU (all processes)", f"{cpu:.1f} s")
    table.add_row("events", f"{summary['events']:,}")
    table.add_row("batches", f"{summary['batches']:,}")
    table.add_row("written", f"{disk / 1e6:.1f} MB")
    table.add_row("events per second", f"{summary['events'] / wall:,.0f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
