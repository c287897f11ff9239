"""Detection against ground truth: a simulated fleet with injected incidents, replayed hourly.

Usage: ``./dev bench detection [--devices 2000] [--days 60] [--seeds 1 2 3] [--step-h 1]``.

For each seed: ``dexscope simulate --incidents auto --server …`` enrolls the fleet and uploads
every batch through the public API into a fresh collector (SQLite, or ``--postgres URL``),
then the collector's jobs (``collector.jobs.run_once``: scoring, detection, retention — the
code ``dexscope collector jobs --once --as-of`` runs) are stepped every ``--step-h`` hours
from the end of the first week to the end of the period. Every alert ever opened is then
matched to the incidents of ``incidents.json`` (an alert belongs to the incident whose
affected devices hold most of its own, detected between the incident's onset and a day after
its end) and to the first ticket of each incident in ``tickets.csv``. Printed per seed and as
the spread over seeds: share of incidents flagged before their first ticket, median lead
time (first ticket - detected_at), share whose suspected change is the true one, false alerts
per 1,000 device-days, and the jobs' time per step. Thresholds are the defaults; nothing is
tuned to a seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import CollectorProcess, create_tenant, dexscope_cmd


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_seed(
    seed: int,
    devices: int,
    days: int,
    step_h: float,
    work: Path,
    pg_url: str | None,
    *,
    reuse: bool = False,
) -> dict[str, Any]:
    """Simulate, upload, replay and evaluate one seed.

    With ``reuse``, a fleet this function uploaded before into ``work`` (SQLite, the same
    devices, days and seed, recorded in ``seed{N}.json``) is replayed again without the
    simulation and upload: the alerts are rebuilt from the rollups' first step on.
    """
    console = Console(stderr=True)
    url = pg_url or f"sqlite:///{work / f'seed{seed}.db'}"
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    env = {"DEXSCOPE_MAX_EVENT_AGE_DAYS": str(days + 3)}
    fleet = work / f"fleet{seed}"
    meta_path = work / f"seed{seed}.json"
    meta = {"devices": devices, "days": days, "seed": seed}
    kept = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if reuse and pg_url is None and kept is not None and kept["fleet"] == meta:
        end = _ts(kept["end"])
        upload_s = float(kept["upload_s"])
        console.print(f"seed {seed}: reusing the fleet uploaded for {end.isoformat()}")
        _reset_replay(url)
    else:
        upload_s = _upload(seed, devices, days, end, url, work, fleet, env)
        meta_path.write_text(
            json.dumps({"fleet": meta, "end": end.isoformat(), "upload_s": upload_s})
        )
    return _replay(seed, devices, days, step_h, end, url, fleet, upload_s, console)


def _reset_replay(url: str) -> None:
    """Forget the alerts, rollups and watermarks of an earlier replay (the events stay)."""
    from sqlalchemy import delete

    from collector.alerts.models import Alert
    from collector.db import make_engine
    from collector.scores.models import DeviceAppDay, DeviceDayScore, ScoringWatermark

    engine = make_engine(url)
    with engine.begin() as conn:
        for model in (Alert, DeviceAppDay, DeviceDayScore, ScoringWatermark):
            conn.execute(delete(model))
    engine.dispose()


def _upload(
    seed: int,
    devices: int,
    days: int,
    end: datetime,
    url: str,
    work: Path,
    fleet: Path,
    env: dict[str, str],
) -> float:
    """``dexscope simulate`` into a fresh collector; returns the seconds it took."""
    started = time.perf_counter()
    with CollectorProcess(url, work / f"collector{seed}.log", extra_env=env) as proc:
        tenant = create_tenant(url)
        subprocess.run(
            dexscope_cmd(
                "simulate",
                "--devices",
                str(devices),
                "--days",
                str(days),
                "--seed",
                str(seed),
                "--end",
                end.isoformat(),
                "--incidents",
                "auto",
                "--max-age-days",
                str(days + 3),
                "--out",
                str(fleet),
                "--server",
                proc.url,
                "--enroll-token",
                tenant.enrollment_token,
                "--json",
            ),
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
    return time.perf_counter() - started


def _replay(
    seed: int,
    devices: int,
    days: int,
    step_h: float,
    end: datetime,
    url: str,
    fleet: Path,
    upload_s: float,
    console: Console,
) -> dict[str, Any]:
    """Step the jobs hourly over the uploaded fleet and evaluate the alerts."""
    from sqlalchemy import select

    from collector.alerts.models import Alert
    from collector.db import make_engine, make_sessionmaker
    from collector.devices.models import Device
    from collector.jobs import JobState, run_once
    from collector.settings import Settings

    incidents = json.loads((fleet / "incidents.json").read_text())
    with (fleet / "tickets.csv").open() as handle:
        tickets = list(csv.DictReader(handle))
    first_ticket: dict[str, datetime] = {}
    for t in tickets:
        if t.get("incident_id"):
            when = _ts(t["opened_at"])
            first_ticket[t["incident_id"]] = min(first_ticket.get(t["incident_id"], when), when)

    settings = Settings(database_url=url, max_event_age_days=days + 3)
    engine = make_engine(settings.resolved_database_url())
    start = end - timedelta(days=days) + timedelta(days=7)
    steps = []
    t = start
    while t <= end:
        steps.append(t)
        t += timedelta(hours=step_h)
    step_times: list[float] = []
    job_times: dict[str, list[float]] = defaultdict(list)
    state = JobState()  # carried between steps, as a long-running jobs process does
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"seed {seed}: replaying {len(steps)} steps", total=len(steps))
        for as_of in steps:
            t0 = time.perf_counter()
            result = run_once(engine, settings, as_of=as_of, state=state)
            state.settle_heap()  # as run_forever does; counted in the step's time
            step_times.append(time.perf_counter() - t0)
            for name, job in result["jobs"].items():
                job_times[name].append(job["duration_s"])
            failed = [n for n, j in result["jobs"].items() if not j["ok"]]
            if failed:
                raise RuntimeError(f"jobs failed at {as_of}: {result['jobs']}")
            progress.advance(task)
    with make_sessionmaker(engine)() as session:
        hosts = {r[0]: r[1] for r in session.execute(select(Device.id, Device.hostname))}
        alerts = list(session.scalars(select(Alert)))
    engine.dispose()
    return evaluate(incidents, first_ticket, alerts, hosts, devices * (days - 7)) | {
        "upload_s": round(upload_s, 1),
        "steps": len(steps),
        "step_s_median": round(statistics.median(step_times), 3),
        "step_s_p95": round(sorted(step_times)[int(0.95 * (len(step_times) - 1))], 3),
        "job_s_median": {k: round(statistics.median(v), 3) for k, v in job_times.items()},
    }


def _change_matches(alert_change: dict[str, Any] | None, truth: dict[str, Any] | None) -> bool:
    if truth is None:
        return alert_change is None
    if alert_change is None:
        return False
    names = {truth.get("name")}
    versions = {truth.get("version_to"), truth.get("kb")} - {None}
    return alert_change.get("name") in names and alert_change.get("version") in versions


def evaluate(
    incidents: list[dict[str, Any]],
    first_ticket: dict[str, datetime],
    alerts: list[Any],
    hosts: dict[Any, str],
    device_days: int,
) -> dict[str, Any]:
    """Match alerts to incidents and compute the figures of the detection issue.

    An alert belongs to the incident holding most of its affected devices (at least half;
    ties go to the tighter fit), detected from an hour before the onset to a day after the
    end, and — when both name a software change — only if it is the same change. Alerts
    that belong to no incident are false alerts.
    """
    affected = {inc["id"]: {d["hostname"] for d in inc["affected_devices"]} for inc in incidents}
    matched: dict[str, list[Any]] = defaultdict(list)
    false_alerts = []
    for alert in alerts:
        mine = {hosts.get(uuid.UUID(d)) for d in alert.affected_device_ids}
        best, best_fit = None, (0.0, 0.0)
        for inc in incidents:
            onset = _ts(inc["onset"])
            stop = _ts(inc["end"]) + timedelta(days=1) if inc.get("end") else None
            if alert.detected_at < onset - timedelta(hours=1):
                continue
            if stop is not None and alert.detected_at > stop:
                continue
            # an alert naming a change belongs only to the incident of that change
            named = alert.suspected_change and inc.get("change")
            if named and not _change_matches(alert.suspected_change, inc["change"]):
                continue
            both = len(mine & affected[inc["id"]])
            # most of the alert's devices in the incident; ties go to the tighter fit
            fit = (both / max(len(mine), 1), both / max(len(mine | affected[inc["id"]]), 1))
            if fit > best_fit:
                best, best_fit = inc, fit
        if best is not None and best_fit[0] >= 0.5:
            matched[best["id"]].append(alert)
        else:
            false_alerts.append(alert)
    per_incident = []
    for inc in incidents:
        found = sorted(matched.get(inc["id"], []), key=lambda a: a.detected_at)
        first = found[0] if found else None
        ticket = first_ticket.get(inc["id"])
        lead_h = (
            (ticket - first.detected_at).total_seconds() / 3600
            if first is not None and ticket is not None
            else None
        )
        per_incident.append(
            {
                "id": inc["id"],
                "kind": inc["kind"],
                "detected": first is not None,
                "before_ticket": first is not None
                and (ticket is None or first.detected_at < ticket),
                "lead_h": None if lead_h is None else round(lead_h, 1),
                "change_ok": first is not None
                and any(_change_matches(a.suspected_change, inc.get("change")) for a in found),
            }
        )
    n = len(incidents)
    leads = [p["lead_h"] for p in per_incident if p["lead_h"] is not None and p["before_ticket"]]
    return {
        "incidents": len(incidents),
        "detected": sum(p["detected"] for p in per_incident),
        "before_first_ticket": sum(p["before_ticket"] for p in per_incident) / n if n else None,
        "median_lead_h": statistics.median(leads) if leads else None,
        "change_correct": sum(p["change_ok"] for p in per_incident) / n if n else None,
        "alerts": len(alerts),
        "false_alerts": len(false_alerts),
        "false_per_1000_device_days": 1000 * len(false_alerts) / max(device_days, 1),
        "per_incident": per_incident,
        "false_alert_titles": [a.title for a in false_alerts[:10]],
    }


def main() -> int:
    """Run every seed and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--step-h", type=float, default=1.0)
    parser.add_argument("--postgres", help="PostgreSQL URL of an empty database (default SQLite)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the databases, fleets and each seed's figures (seedN-results.json) here",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: replay a fleet uploaded there before instead of uploading again",
    )
    args = parser.parse_args()
    console = Console()
    results = []
    with tempfile.TemporaryDirectory(prefix="dexscope-bench-detection-") as tmp:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            console.print(f"seed {seed}: {args.devices} devices x {args.days} days…")
            result = run_seed(
                seed,
                args.devices,
                args.days,
                args.step_h,
                args.keep or Path(tmp),
                args.postgres,
                reuse=args.reuse and args.keep is not None,
            )
            results.append(result)
            if args.keep:
                # An hour-long replay's figures must outlive the terminal it printed to.
                out = args.keep / f"seed{seed}-results.json"
                out.write_text(json.dumps(result, default=str, indent=1))
                console.print(f"seed {seed}: figures written to {out}")
    table = Table(
        title=f"Detection, {args.devices} devices x {args.days} days, step {args.step_h} h"
    )
    table.add_column("figure")
    for seed in args.seeds:
        table.add_column(f"seed {seed}", justify="right")
    table.add_column("target", justify="right")

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None:
            return "—"
        return f"{100 * v:.0f} %" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))

    rows = [
        ("incidents (detected)", lambda r: f"{r['incidents']} ({r['detected']})", ""),
        ("flagged before first ticket", lambda r: fmt(r["before_first_ticket"], True), "≥ 90 %"),
        ("median lead time (h)", lambda r: fmt(r["median_lead_h"]), "≥ 4"),
        ("suspected change correct", lambda r: fmt(r["change_correct"], True), "≥ 80 %"),
        ("alerts (false)", lambda r: f"{r['alerts']} ({r['false_alerts']})", ""),
        (
            "false alerts / 1,000 device-days",
            lambda r: fmt(r["false_per_1000_device_days"]),
            "≤ 0.5",
        ),
        (
            "jobs per step, median / p95 (s)",
            lambda r: f"{r['step_s_median']} / {r['step_s_p95']}",
            "",
        ),
        (
            "median per job (s)",
            lambda r: ", ".join(f"{k} {v}" for k, v in r["job_s_median"].items()),
            "",
        ),
        ("simulate + upload (s)", lambda r: fmt(r["upload_s"]), ""),
    ]
    for name, get, target in rows:
        table.add_row(name, *(get(r) for r in results), target)
    console.print(table)
    for seed, r in zip(args.seeds, results, strict=True):
        marks = []
        for p in r["per_incident"]:
            mark = "ok" if p["before_ticket"] else ("late" if p["detected"] else "missed")
            lead = "" if p["lead_h"] is None else f" {p['lead_h']} h"
            marks.append(f"{p['kind']}={mark}{lead}")
        console.print(f"seed {seed} incidents: " + ", ".join(marks))
        if r["false_alert_titles"]:
            console.print(f"  false alerts, first ones: {r['false_alert_titles']}")
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    if args.json:
        print(json.dumps(results, default=str, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
