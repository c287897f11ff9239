"""XLA tables: a definition, its immutable versions, and one evaluation per period."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["XlaDefinition", "XlaDefinitionVersion", "XlaEvaluation"]


class XlaDefinition(Base):
    """One XLA of one tenant, by name; its content lives in :class:`XlaDefinitionVersion`.

    Saving a definition under an existing name adds a version and moves ``version`` on;
    evaluations keep the version they used, so an old report can be regenerated as it was.
    """

    __tablename__ = "xla_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    """The current version (the highest)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class XlaDefinitionVersion(Base):
    """The content of one version of an XLA definition; never changed once written."""

    __tablename__ = "xla_definition_versions"

    definition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("xla_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """The validated definition (the ``XlaIn`` fields but name and tenant)."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class XlaEvaluation(Base):
    """One XLA over one period: status, figures and what they were computed from.

    ``final`` evaluations (computed after the period and its grace days ended) are never
    recomputed by the jobs, so a report regenerated later shows the same figures.
    """

    __tablename__ = "xla_evaluations"
    __table_args__ = (
        UniqueConstraint("definition_id", "period"),
        Index("ix_xla_evaluations_tenant_period", "tenant_id", "period"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    definition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("xla_definitions.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))
    """``YYYY-MM`` or ``YYYY-Www`` (ISO week)."""
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    """The last day of the period (inclusive)."""
    status: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Everything the report shows: coverage, SLA, watermelon, proactive figures, series."""
    reason: Mapped[str] = mapped_column(Text)
    final: Mapped[bool] = mapped_column(default=False)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
