"""The ticket table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["Ticket"]


class Ticket(Base):
    """One service-desk ticket of a tenant, keyed by the ITSM's ``external_id``.

    Re-importing a ticket with the same ``external_id`` in the same tenant updates this
    row. ``user_hash`` is the keyed hash of the ticket's user (never the name itself);
    ``device_id`` and ``alert_id`` are what matching found (None when nothing matched).
    """

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        Index("ix_tickets_tenant_opened", "tenant_id", "opened_at"),
        Index("ix_tickets_alert_opened", "alert_id", "opened_at"),
        Index("ix_tickets_device_opened", "device_id", "opened_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    device_hostname: Mapped[str | None] = mapped_column(String(253), default=None)
    user_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    """HMAC-SHA-256 of the user name keyed with the tenant's pseudonym key (as agents do)."""
    category: Mapped[str] = mapped_column(String(100))
    summary: Mapped[str] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    """Columns or fields beyond the contract's (e.g. the simulator's ``incident_id``)."""
    device_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), default=None
    )
    alert_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
