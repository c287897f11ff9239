"""The survey campaign table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["SurveyCampaign"]


class SurveyCampaign(Base):
    """One survey campaign of a tenant, stored in the agent's campaign shape.

    The key is ``(tenant_id, id)``: ``id`` is the agent-visible campaign id (a string of at
    most 64 characters, chosen by IT or a generated UUID), unique within its tenant, so one
    tenant's choice of id never collides with, or reveals, another tenant's.
    """

    __tablename__ = "survey_campaigns"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    question: Mapped[dict[str, Any]] = mapped_column(JSONType)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONType)
    targeting: Mapped[dict[str, Any]] = mapped_column(JSONType)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_after_s: Mapped[float] = mapped_column(Float)
    min_responses: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    """Fewest scored answers before a result (overall, per trigger, persona or week) is shown."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    """Who created it: ``api_key:<id>`` or ``user:<id>``."""
