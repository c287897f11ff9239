"""Score tables: the daily device and (device, app) rollups, and the job's watermark."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["DeviceAppDay", "DeviceDayScore", "ScoringWatermark"]


class DeviceDayScore(Base):
    """One device on one UTC day: its score, sub-scores and everything behind them.

    Kept long (the daily rollup): reports, trends and explanations read these rows, not the
    raw events, so they can be regenerated after raw retention has run.
    """

    __tablename__ = "device_day_scores"
    __table_args__ = (Index("ix_device_day_scores_tenant_day", "tenant_id", "day"),)

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    persona: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    startup: Mapped[float | None] = mapped_column(Float)
    responsiveness: Mapped[float | None] = mapped_column(Float)
    stability: Mapped[float | None] = mapped_column(Float)
    sentiment: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    points_lost: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sentiment_confidence: Mapped[float | None] = mapped_column(Float)
    active_s: Mapped[float] = mapped_column(Float)
    time_lost_min: Mapped[float] = mapped_column(Float)
    time_lost: Mapped[dict[str, Any]] = mapped_column(JSONType)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    measures: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    """Raw daily measures beside the scores: median boot and sign-in seconds, pressure
    shares, the highest disk use, and the survey answers given that day with their mean on
    0-100 (``survey_answers``, ``survey_mean_100``; null where not measured)."""
    scoring_version: Mapped[int]
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceAppDay(Base):
    """One application on one device on one day: present, its score, hangs, crashes."""

    __tablename__ = "device_app_days"
    __table_args__ = (Index("ix_device_app_days_tenant_day", "tenant_id", "day"),)

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    app_name: Mapped[str] = mapped_column(String(256), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    persona: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    hangs: Mapped[int]
    crashes: Mapped[int]
    time_lost_min: Mapped[float] = mapped_column(Float)


class ScoringWatermark(Base):
    """How far the scoring job has got for one tenant (what "new data" means next time)."""

    __tablename__ = "scoring_watermarks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    received_through: Mapped[datetime] = mapped_column(UTCDateTime())
    """Batches received up to here have been scored (with a safety lag, see the service)."""
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    """Events timestamped up to here were included."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
