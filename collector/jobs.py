"""Periodic jobs run by ``dexscope collector jobs``.

Jobs are plain functions registered in :data:`JOBS`, each taking a session, the settings and
the time to run as (``as_of``) and returning a JSON-able summary. Scoring, detection and XLA
evaluation register here as they land. Scoring runs before retention, so a device-day is
rolled up before its raw events can age out.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from collector.alerts.cache import DetectionCache
from collector.alerts.service import run_detection
from collector.db import make_sessionmaker, utcnow
from collector.health.models import JobRun
from collector.health.repository import JobRunRepository
from collector.ingest.repository import IngestRepository
from collector.notifications.delivery import run_notify
from collector.scores.cache import ScoringCache
from collector.scores.repository import ScoresRepository
from collector.scores.service import run_scoring
from collector.settings import Settings
from collector.xlas.service import run_xla

__all__ = ["JOBS", "Job", "JobState", "retention", "run_forever", "run_once"]

log = logging.getLogger(__name__)

Job = Callable[[Session, Settings, datetime], dict[str, Any]]
"""A job: (session, settings, as_of) -> summary."""


def retention(session: Session, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Delete raw events older than ``raw_retention_days``, stale idempotency records, and
    daily rollups older than ``rollup_retention_days``.

    Idempotency records are kept a day longer than the oldest event the collector would
    still accept (``max_event_age_days``), so an old batch replayed can never be stored twice.
    XLA evaluations are kept: they are small and what past reports are regenerated from.

    It runs at most every ``retention_every_h`` hours of ``as_of`` (a day by default): each
    run scans the events, and its cutoffs only move by a day a day. A run at an earlier
    ``as_of`` than the last one (a replay) runs at once.
    """
    last = JobRunRepository(session).last_ok_as_of("retention")
    every = timedelta(hours=settings.retention_every_h)
    if last is not None and last <= as_of < last + every:
        return {"skipped": True, "next_at": (last + every).isoformat()}
    repo = IngestRepository(session)
    event_cutoff = as_of - timedelta(days=settings.raw_retention_days)
    batch_days = max(settings.raw_retention_days, settings.max_event_age_days) + 1
    batch_cutoff = as_of - timedelta(days=batch_days)
    rollup_cutoff = (as_of - timedelta(days=settings.rollup_retention_days)).date()
    summary: dict[str, Any] = {
        "events_deleted": repo.delete_events_before(event_cutoff),
        "batches_deleted": repo.delete_batches_before(batch_cutoff),
        "event_cutoff": event_cutoff.isoformat(),
    }
    device_days, app_days = ScoresRepository(session).delete_rollups_before(rollup_cutoff)
    summary["job_runs_deleted"] = JobRunRepository(session).delete_before(
        as_of - timedelta(days=JOB_RUN_RETENTION_DAYS)
    )
    session.commit()
    return {
        **summary,
        "device_days_deleted": device_days,
        "app_days_deleted": app_days,
        "rollup_cutoff": rollup_cutoff.isoformat(),
    }


JOB_RUN_RETENTION_DAYS: Final = 30
"""How long the record of each job run is kept (``job_runs``)."""

JOBS: dict[str, Job] = {
    "scores": run_scoring,
    "detect": run_detection,
    "xla": run_xla,
    "retention": retention,
    "notify": run_notify,
}
"""Every job, by name, in the order they run."""


@dataclass
class JobState:
    """What a long-running jobs process carries from one run to the next.

    Only caches: a run with a fresh state computes exactly what a run with a carried one
    does, reading more from the database. ``dexscope collector jobs`` keeps one for as long
    as it runs; ``--once`` starts empty.
    """

    scoring: ScoringCache = field(default_factory=ScoringCache)
    """The open days' raw events (collector.scores.cache)."""
    detection: DetectionCache = field(default_factory=DetectionCache)
    """The detectors' windows of events and rollups (collector.alerts.cache)."""
    runs: int = 0
    """Runs settled so far (:meth:`settle_heap`)."""

    def settle_heap(self) -> None:
        """Keep Python's cyclic garbage collector off the caches between two runs.

        The caches hold millions of small objects (a fleet's windows of events and
        rollups). Every full collection walks all of them, and a run allocates enough to
        trigger one or more: at 2,000 devices that was half of each hourly run. So after a
        run the survivors are frozen (``gc.freeze``: moved where collections do not look),
        once the young generations are collected. Every :data:`FULL_COLLECT_EVERY` runs
        they are thawed and fully collected once, so cycles dropped from a cache since
        (evicted windows) are still freed. Process-wide, hence only for a process that
        does nothing but run jobs: ``run_forever`` and the detection benchmark.
        """
        self.runs += 1
        if self.runs % FULL_COLLECT_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()


FULL_COLLECT_EVERY: Final = 24
"""Runs between two full garbage collections of a jobs process (:meth:`JobState.settle_heap`)."""


def _with_state(name: str, job: Job, state: JobState) -> Job:
    if name == "scores":
        return functools.partial(run_scoring, cache=state.scoring)
    if name == "detect":
        return functools.partial(run_detection, cache=state.detection)
    return job


def run_once(
    engine: Engine,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    state: JobState | None = None,
) -> dict[str, Any]:
    """Run every job once; a failing job is reported and does not stop the others.

    ``state``: caches carried between the runs of one process (:class:`JobState`).
    """
    as_of = as_of or utcnow()
    state = state or JobState()
    factory = make_sessionmaker(engine)
    results: dict[str, Any] = {"as_of": as_of.isoformat(), "jobs": {}}
    for name, job in JOBS.items():
        started = time.perf_counter()
        run = _with_state(name, job, state)
        with factory() as session:
            try:
                summary: dict[str, Any] = {"ok": True, **run(session, settings, as_of)}
            except Exception as exc:
                session.rollback()
                log.exception("job %s failed", name)
                summary = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        summary["duration_s"] = round(time.perf_counter() - started, 3)
        results["jobs"][name] = summary
        _record(factory, name, as_of, summary)
    return results


def _record(
    factory: sessionmaker[Session], name: str, as_of: datetime, summary: dict[str, Any]
) -> None:
    """Keep the run for ``/metrics`` (a failure to record is logged, never fatal)."""
    try:
        with factory() as session:
            JobRunRepository(session).add(
                JobRun(
                    name=name,
                    as_of=as_of,
                    finished_at=utcnow(),
                    duration_s=float(summary["duration_s"]),
                    ok=bool(summary["ok"]),
                    error=summary.get("error"),
                )
            )
            session.commit()
    except Exception:
        log.exception("could not record the run of job %s", name)


def run_forever(engine: Engine, settings: Settings, *, interval_s: float) -> None:
    """Run the jobs every ``interval_s`` seconds until interrupted (one state throughout)."""
    state = JobState()
    while True:
        log.info("jobs: %s", run_once(engine, settings, state=state))
        state.settle_heap()
        time.sleep(interval_s)
