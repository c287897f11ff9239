"""Prometheus metrics of one collector process (``GET /metrics``).

Each app has its own registry. With several worker processes each exposes its own
figures; Prometheus sums them per instance label (documented in docs/architecture.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

__all__ = ["CollectorMetrics"]


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
