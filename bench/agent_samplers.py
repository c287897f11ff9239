"""CPU cost of one run of each agent sampler on this machine.

Usage: ``./dev bench samplers [--runs N]``. Every built-in sampler runs N times (after one
warm-up run that also takes the log samplers' starting positions) through the real runner,
on a real spool in a temporary state directory, so cursors persist as in the agent; printed
is the CPU time (``time.process_time``) per run. ``app_resource`` is measured on its
5-minute summary run (its worst case; its 30-second ticks cost next to nothing on Linux).
Probes and surveys have nothing to do without targets or campaigns, as by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agent.runner import SamplerRunner
from agent.samplers import SamplerContext, load_builtin_samplers
from agent.samplers.app_resource import AppResourceSampler
from agent.spool import Spool


def _jumping_clock() -> Callable[[], float]:
    now = [0.0]

    def clock() -> float:
        now[0] += 300.0
        return now[0]

    return clock


def main() -> int:
    """Run every sampler, print the CPU milliseconds per run; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per sampler (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="dexscope-bench-samplers-"))
    spool = Spool(state / "spool.db")
    runner = SamplerRunner()
    ctx = SamplerContext(state, spool.stats, runner.take_stats, spool.mark)
    figures: dict[str, float] = {}
    for name, cls in load_builtin_samplers().items():
        # app_resource summarises every 5 minutes: a clock that jumps 5 minutes per run
        # makes every run a summary (its worst case)
        sampler = AppResourceSampler(clock=_jumping_clock()) if name == "app_resource" else cls()
        runner.round([sampler], ctx, spool)  # warm-up: first reads, baselines
        started = time.process_time()
        for _ in range(args.runs):
            runner.round([sampler], ctx, spool)
        figures[name] = round((time.process_time() - started) / args.runs * 1000, 3)
    spool.close()
    if args.json:
        print(json.dumps(figures))
        return 0
    table = Table(
        title=f"CPU per sampler run ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.runs} runs each)"
    )
    table.add_column("sampler")
    table.add_column("CPU ms per run", justify="right")
    for name, ms in figures.items():
        table.add_row(name, f"{ms:.2f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
