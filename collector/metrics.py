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

__all__ = ["CollectorMetrics", "PoolCollector"]


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
        self._pool: PoolCollector | None = None

    def watch_pool(self, engine: Engine) -> None:
        """Expose ``engine``'s connection pool (called by the app's lifespan)."""
        if self._pool is not None:
            self.registry.unregister(self._pool)
        self._pool = PoolCollector(engine)
        self.registry.register(self._pool)
