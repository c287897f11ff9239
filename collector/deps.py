"""Request-scoped dependencies shared by routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from collector.metrics import CollectorMetrics
from collector.settings import Settings

__all__ = ["MetricsDep", "SettingsDep"]


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
