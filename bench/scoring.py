"""Scoring benchmark: synthetic device-days through the whole numpy scoring core.

Usage: ``python bench/scoring.py [--devices 100000] [--days 30] [--apps 50] [--seed 7]``

Generates (fixed seed) a fleet's device-day inputs — about 1 boot and 2 sign-ins a day,
0.6 app hangs, 0.1 app crashes and 0.005 system crashes a day, 4 web probes, two resource
rollups (active time and pressure) a day and sparse survey prompts (0.05 a day, 60 %
answered) — then times each scoring stage: metric classification, sub-scores, totals,
rolling 7- and 28-day means, time lost, aggregates per persona and per app, and the top
contributors of the 100 worst device-days. Prints the stage times, the scoring total (not
generation) and the peak RSS, scores everything twice and checks the output hashes agree.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dexscope.wire import SURVEY_OUTCOMES
from scoring.aggregate import aggregate
from scoring.explain import app_contributors, points_lost, top_contributors
from scoring.metrics import QUESTION_TYPES, DeviceDayInputs, metric_scores, survey_to_100
from scoring.personas import DEFAULT_PERSONAS, persona_arrays
from scoring.score import rolling_mean, subscore_weights, subscores, total_score
from scoring.time_lost import time_lost


def generate(n_devices: int, n_days: int, n_apps: int, seed: int) -> DeviceDayInputs:
    """Synthetic, realistic-shaped device-day inputs (vectorised; fixed seed)."""
    rng = np.random.default_rng(seed)
    n = n_devices * n_days
    persona = rng.choice(len(DEFAULT_PERSONAS), n_devices, p=[0.55, 0.15, 0.15, 0.1, 0.05])
    # a few devices are bad: scale their event rates and durations
    badness = np.repeat(rng.lognormal(0.0, 0.6, n_devices), n_days)
    apps_p = 1.0 / np.arange(1, n_apps + 1)
    apps_p /= apps_p.sum()

    def events(rate: float) -> np.ndarray[Any, np.dtype[np.intp]]:
        counts = rng.poisson(rate * badness)
        return np.repeat(np.arange(n, dtype=np.intp), counts)

    boot_g, logon_g, hang_g = events(1.0), events(2.0), events(0.6)
    crash_g, sys_g, probe_g = events(0.1), events(0.005), np.repeat(np.arange(n), 4)
    hang_s = rng.lognormal(2.2, 0.8, len(hang_g))
    hang_s[rng.random(len(hang_g)) < 0.3] = np.nan  # hang length not recorded
    probe_ok = rng.random(len(probe_g)) > 0.02
    res_g = np.repeat(np.arange(n, dtype=np.intp), 2)
    active = rng.uniform(0.5, 5.0, len(res_g)) * 3600.0 * (rng.random(len(res_g)) > 0.05)
    share = np.repeat(badness, 2)[:, None] * rng.gamma(1.0, [0.03, 0.01, 0.03], (len(res_g), 3))
    n_prompts = rng.poisson(0.05 * n_days, n_devices)
    sdev = np.repeat(np.arange(n_devices), n_prompts)
    qtype = rng.integers(0, len(QUESTION_TYPES), len(sdev))
    outcome = np.where(
        rng.random(len(sdev)) < 0.6,
        SURVEY_OUTCOMES.index("answered"),
        SURVEY_OUTCOMES.index("dismissed"),
    )
    scale_top = np.array([5, 5, 10, 7, 1])[qtype]
    value = np.where(outcome == 0, np.round(rng.random(len(sdev)) * scale_top), np.nan)
    value = np.maximum(value, np.array([1, 1, 0, 1, 0])[qtype])
    return DeviceDayInputs(
        n_devices=n_devices,
        n_days=n_days,
        persona=persona.astype(np.intp),
        boot_s=rng.lognormal(np.log(50.0), 0.5, len(boot_g)) * badness[boot_g] ** 0.5,
        boot_group=boot_g,
        logon_s=rng.lognormal(np.log(20.0), 0.6, len(logon_g)) * badness[logon_g] ** 0.5,
        logon_group=logon_g,
        hang_s=hang_s,
        hang_group=hang_g,
        hang_app=rng.choice(n_apps, len(hang_g), p=apps_p),
        crash_group=crash_g,
        crash_app=rng.choice(n_apps, len(crash_g), p=apps_p),
        system_crash_group=sys_g,
        probe_s=np.where(probe_ok, rng.lognormal(np.log(0.5), 0.7, len(probe_g)), np.nan),
        probe_ok=probe_ok,
        probe_group=probe_g,
        resource_group=res_g,
        interval_s=active,
        cpu_pressure_s=active * share[:, 0],
        memory_pressure_s=active * share[:, 1],
        io_pressure_s=active * share[:, 2],
        survey_device=sdev,
        survey_t_days=rng.uniform(0, n_days, len(sdev)),
        survey_value_100=survey_to_100(value, qtype),
        survey_outcome=outcome,
    )


def score(
    inputs: DeviceDayInputs, n_apps: int, stage: Callable[[str], None]
) -> dict[str, np.ndarray[Any, Any]]:
    """Every scoring stage, calling ``stage(name)`` after each; returns the outputs."""
    params = persona_arrays()
    ms = metric_scores(inputs, params)
    stage("classify (metric scores)")
    persona_g = inputs.persona_of_group()
    subs = subscores(ms.scores, persona_g, params)
    stage("sub-scores")
    weights = subscore_weights(subs, persona_g, params, ms.sentiment_confidence)
    total = total_score(subs, weights)
    stage("totals")
    grid = total.reshape(inputs.n_devices, inputs.n_days)
    r7, r28 = rolling_mean(grid, 7), rolling_mean(grid, 28)
    stage("rolling 7 & 28")
    lost = time_lost(inputs, params, n_apps)
    stage("time lost")
    latest = r7[:, -1]
    by_persona = aggregate(latest, inputs.persona, len(params.names))
    # app view: each device counts for the apps it uses — a fixed portfolio of 5 apps
    # (generated from the device id, as the collector would know it from app_resource) plus
    # any app it saw hang or crash
    portfolio = (np.arange(inputs.n_devices)[:, None] * 7 + np.arange(5) * 11) % n_apps
    dev = np.concatenate(
        [
            np.repeat(np.arange(inputs.n_devices), 5),
            inputs.hang_group // inputs.n_days,
            inputs.crash_group // inputs.n_days,
        ]
    )
    app = np.concatenate([portfolio.ravel(), inputs.hang_app, inputs.crash_app])
    used = np.zeros(inputs.n_devices * n_apps, dtype=np.bool_)
    used[dev * n_apps + app] = True
    pairs = np.flatnonzero(used)
    by_app = aggregate(latest[pairs // n_apps], pairs % n_apps, n_apps)
    stage("aggregates (persona, app)")
    ranked = np.where(np.isnan(total), np.inf, total)
    worst = np.argpartition(ranked, 100)[:100]
    worst = worst[np.lexsort((worst, ranked[worst]))]  # by score, ties by device-day id
    pl = points_lost(ms.scores[worst], persona_g[worst], params, ms.sentiment_confidence[worst])
    top = top_contributors(pl, ms.scores[worst], worst, k=3)
    apps = app_contributors(worst, pl, inputs, params)
    stage("explain worst 100")
    return {
        "metrics": ms.scores,
        "subscores": subs,
        "total": total,
        "r7": r7,
        "r28": r28,
        "lost": lost.per_group,
        "lost_app": lost.per_app,
        "persona_mean": by_persona.mean,
        "app_mean": by_app.mean,
        "top": top.view(np.uint8),
        "apps": apps.view(np.uint8),
    }


def digest(outputs: dict[str, np.ndarray[Any, Any]]) -> str:
    """SHA-256 over every output array's bytes (NaN-stable: same bits, same hash).

    Hashes the arrays' buffers in place (a Fortran-ordered array through its transpose), so
    the check does not add copies of the largest outputs to the peak RSS.
    """
    h = hashlib.sha256()
    for name in sorted(outputs):
        h.update(name.encode())
        a = outputs[name]
        a = a.T if a.flags.f_contiguous and not a.flags.c_contiguous else a
        h.update(np.ascontiguousarray(a).data)  # no copy of the big arrays
    return h.hexdigest()[:16]


def main() -> None:
    """Run the benchmark and print the stage table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console()

    t0 = time.perf_counter()
    inputs = generate(args.devices, args.days, args.apps, args.seed)
    gen_s = time.perf_counter() - t0
    gen_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    input_mib = sum(v.nbytes for v in vars(inputs).values() if isinstance(v, np.ndarray)) / 2**20
    sizes = {
        "boots": len(inputs.boot_s),
        "sign-ins": len(inputs.logon_s),
        "hangs": len(inputs.hang_s),
        "crashes": len(inputs.crash_group),
        "probes": len(inputs.probe_s),
        "resource rollups": len(inputs.interval_s),
        "survey prompts": len(inputs.survey_device),
    }
    times: list[tuple[str, float]] = []
    last = [time.perf_counter()]

    def stage(name: str) -> None:
        now = time.perf_counter()
        times.append((name, now - last[0]))
        last[0] = now

    hashes = []
    for run in range(2):
        times.clear()
        last[0] = time.perf_counter()
        hashes.append(digest(score(inputs, args.apps, stage)))
        if run == 0:
            first = list(times)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    table = Table(title=f"Scoring {args.devices:,} devices · {args.days} days")
    table.add_column("stage")
    table.add_column("run 1 (s)", justify="right")
    table.add_column("run 2 (s)", justify="right")
    table.add_row("generate (not scoring)", f"{gen_s:.2f}", "")
    for (name, a), (_, b) in zip(first, times, strict=True):
        table.add_row(name, f"{a:.3f}", f"{b:.3f}")
    total_1, total_2 = sum(t for _, t in first), sum(t for _, t in times)
    table.add_row("[bold]scoring total", f"[bold]{total_1:.2f}", f"[bold]{total_2:.2f}")
    console.print(table)
    console.print("inputs: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    console.print(
        f"peak RSS {peak_mib:,.0f} MiB (whole process: interpreter, numpy, generation "
        f"temporaries and {input_mib:,.0f} MiB of inputs included); "
        f"peak after generation alone {gen_peak_mib:,.0f} MiB"
    )
    same = hashes[0] == hashes[1]
    console.print(f"output hash {hashes[0]} · {'identical' if same else 'DIFFERENT'} across runs")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
