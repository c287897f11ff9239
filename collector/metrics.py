"""Prometheus metrics of one collector process (``GET /metrics``).

Each app has its own registry. With several worker processes each exposes its own
figures; Prometheus sums them per instance label (documented in docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["CollectorMetrics", "JobRunCollector", "PoolCollector"]


class PoolCollector(Collector):
    """Database connection-pool figures of one engine, read at scrape time.

    ``dexscope_db_pool_size`` (configured), ``…_checked_out`` (in use now) and
    ``…_overflow`` (opened beyond the size); a pool without these (SQLite's) reports
    only what it has.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The pool gauges (Prometheus calls this on every scrape)."""
        pool: Any = self.engine.pool
        for name, doc, attr in (
            ("dexscope_db_pool_size", "Connections the pool keeps", "size"),
            ("dexscope_db_pool_checked_out", "Connections in use now", "checkedout"),
            ("dexscope_db_pool_overflow", "Connections opened beyond the pool size", "overflow"),
        ):
            read = getattr(pool, attr, None)
            if callable(read):
                yield GaugeMetricFamily(name, doc, value=float(read()))


class JobRunCollector(Collector):
    """The newest run of each job, read from the database at scrape time.

    Jobs run in their own processes (``dexscope collector jobs``), so a serving process
    learns how they went from ``job_runs``: ``dexscope_job_last_duration_seconds``,
    ``dexscope_job_last_ok`` (1/0), ``dexscope_job_last_run_timestamp_seconds`` and
    ``dexscope_job_last_success_timestamp_seconds``, each labelled by job. An unreachable
    database yields no job figures (``/readyz`` reports that), never a failed scrape.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The job gauges (Prometheus calls this on every scrape)."""
        from collector.health.repository import JobRunRepository

        try:
            with self.factory() as session:
                repo = JobRunRepository(session)
                latest, success = repo.latest(), repo.last_success()
        except SQLAlchemyError:
            return
        families = {
            "duration": GaugeMetricFamily(
                "dexscope_job_last_duration_seconds", "Duration of the last run", labels=["job"]
            ),
            "ok": GaugeMetricFamily(
                "dexscope_job_last_ok", "1 if the last run succeeded", labels=["job"]
            ),
            "run": GaugeMetricFamily(
                "dexscope_job_last_run_timestamp_seconds",
                "When the last run finished (Unix time)",
                labels=["job"],
            ),
            "success": GaugeMetricFamily(
                "dexscope_job_last_success_timestamp_seconds",
                "When the last successful run finished (Unix time)",
                labels=["job"],
            ),
        }
        for run in latest:
            families["duration"].add_metric([run.name], run.duration_s)
            families["ok"].add_metric([run.name], 1.0 if run.ok else 0.0)
            families["run"].add_metric([run.name], run.finished_at.timestamp())
        for name, at in success.items():
            families["success"].add_metric([name], at.timestamp())
        yield from families.values()


class CollectorMetrics:
    """The counters and histograms the collector keeps."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dexscope_http_requests",
            "HTTP requests by route and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dexscope_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.batches = Counter(
            "dexscope_ingest_batches",
            "Ingest batches by outcome (stored, duplicate, or the error code)",
            ["outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "dexscope_ingest_events", "Events stored by ingest", registry=self.registry
        )
        self.enrollments = Counter(
            "dexscope_enrollments",
            "Enrollment attempts by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._watched: list[Collector] = []

    def watch(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        """Expose ``engine``'s connection pool and the jobs' last runs (called by the
        app's lifespan once the engine exists)."""
        for collector in self._watched:
            self.registry.unregister(collector)
        self._watched = [PoolCollector(engine), JobRunCollector(factory)]
        for collector in self._watched:
            self.registry.register(collector)
