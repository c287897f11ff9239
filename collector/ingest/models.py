"""Batch and raw event tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow

__all__ = ["Event", "IngestBatch"]


class IngestBatch(Base):
    """One accepted batch: the idempotency record (a replayed ``batch_id`` matches it)."""

    __tablename__ = "ingest_batches"
    __table_args__ = (UniqueConstraint("device_id", "batch_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    batch_id: Mapped[uuid.UUID]
    content_sha256: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int]
    agent_version: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    clock_offset_s: Mapped[float] = mapped_column(Float, default=0.0)


class Event(Base):
    """One raw event as the agent sent it (type-specific fields in ``data``)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        Index("ix_events_device_ts", "device_id", "ts"),
        Index("ix_events_tenant_type_ts", "tenant_id", "type", "ts"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    batch_pk: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("ingest_batches.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
