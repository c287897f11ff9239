"""The alert table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["Alert"]


class Alert(Base):
    """One detected degradation of one scope and metric.

    ``fingerprint`` (kind, scope, scope key, metric) identifies "the same problem": while an
    alert with that fingerprint is open or acknowledged, detection updates it instead of
    opening another, and a finding within ``REOPEN_WITHIN`` of its resolution reopens it
    (collector.alerts.service). ``status`` is ``open``, ``acknowledged`` or ``resolved``.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_status", "tenant_id", "status"),
        Index("ix_alerts_tenant_fingerprint", "tenant_id", "fingerprint"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(32))
    """``change_point`` (a series left its baseline) or ``cohort`` (a group diverges from its
    peers)."""
    scope: Mapped[str] = mapped_column(String(32))
    """device, app, app_version, persona, group, site or tenant."""
    scope_key: Mapped[str] = mapped_column(String(400))
    """Which one: the device id, ``app``, ``app@version``, the persona's name, …"""
    metric: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    """``low``, ``medium``, ``high`` or ``critical``."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    onset: Mapped[datetime] = mapped_column(UTCDateTime())
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When it was last reopened (None: never)."""
    reopenings: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    """Each time it came back: ``{"resolved_at", "reopened_at"}`` (ISO 8601), oldest first."""
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), default=None)
    affected_count: Mapped[int] = mapped_column(Integer, default=0)
    affected_device_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    baseline: Mapped[float | None] = mapped_column(Float, default=None)
    current: Mapped[float | None] = mapped_column(Float, default=None)
    effect_size: Mapped[float | None] = mapped_column(Float, default=None)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Baseline vs now, the statistic and its threshold, a small series."""
    suspected_change: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    """The software change whose rollout best matches the affected devices and the onset,
    with its match figures (or None when none explains it)."""
