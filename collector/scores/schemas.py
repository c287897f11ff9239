"""Response models of the scores API (they document ``/openapi.json``)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Contributor", "DeviceExplanation", "ScopeExplanation", "ScoreItem", "ScoreList"]


class ScoreItem(BaseModel):
    """One day of one device, persona, app or tenant (fields by level; null = not enough data)."""

    model_config = ConfigDict(extra="forbid")

    day: date
    device_id: uuid.UUID | None = None
    hostname: str | None = None
    persona: str | None = None
    app: str | None = None
    group: str | None = None
    tenant: str | None = None
    devices: int | None = Field(None, description="scored devices (aggregates)")
    enough: bool | None = Field(None, description="aggregates: at least 5 scored devices")
    score: float | None = None
    startup: float | None = None
    responsiveness: float | None = None
    stability: float | None = None
    sentiment: float | None = None
    share_good: float | None = None
    share_tolerating: float | None = None
    share_frustrating: float | None = None
    hangs: int | None = None
    crashes: int | None = None
    time_lost_min: float | None = None


class ScoreList(BaseModel):
    """Daily scores of one level over a period (each day over a trailing window)."""

    level: str
    from_: date = Field(alias="from")
    to: date
    window: int = Field(description="days averaged into each day's figure (1, 7 or 28)")
    items: list[ScoreItem]

    model_config = ConfigDict(populate_by_name=True)


class Contributor(BaseModel):
    """A metric that cost points: E_m · (100 - X_m), summing to 100 - score."""

    metric: str
    points_lost: float | None
    metric_score: float | None


class DeviceExplanation(BaseModel):
    """Why one device-day scored what it did, down to the events."""

    level: str
    id: str
    hostname: str
    day: date
    persona: str
    score: float | None
    startup: float | None
    responsiveness: float | None
    stability: float | None
    sentiment: float | None
    metrics: dict[str, float | None]
    contributors: list[Contributor]
    sentiment_confidence: float | None
    active_s: float
    time_lost_min: dict[str, float | None]
    counts: dict[str, int]
    apps: list[dict[str, Any]]
    events: list[dict[str, Any]] = Field(
        description="raw events that cost points (while raw events are retained)"
    )
    scoring_version: int


class ScopeExplanation(BaseModel):
    """Why a persona, app or tenant scored what it did over a period."""

    model_config = ConfigDict(populate_by_name=True)

    level: str
    id: str
    from_: date = Field(alias="from")
    to: date
    device_days: int
    devices: int
    score: float | None
    enough: bool
    contributors: list[Contributor]
    time_lost_min: dict[str, float | None]
    top_apps: list[dict[str, Any]]
    worst_devices: list[dict[str, Any]]
