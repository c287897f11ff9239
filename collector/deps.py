"""Request-scoped dependencies shared by routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from collector.metrics import CollectorMetrics
from collector.settings import Settings

__all__ = ["MAX_PAGE_OFFSET", "MetricsDep", "PageOffset", "SettingsDep"]

MAX_PAGE_OFFSET = 2**63 - 1
"""The largest ``offset`` a listing takes: the largest integer SQLite and PostgreSQL bind.

A larger one would fail in the driver (a 500); it is refused with a 422 instead."""


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _metrics(request: Request) -> CollectorMetrics:
    metrics: CollectorMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
"""The settings the app was created with."""

MetricsDep = Annotated[CollectorMetrics, Depends(_metrics)]
"""This process's Prometheus metrics."""

PageOffset = Annotated[
    int, Query(ge=0, le=MAX_PAGE_OFFSET, description="rows to skip, 0 to 2^63 - 1")
]
"""The ``offset`` query parameter of every paged listing."""
