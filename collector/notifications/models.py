"""The webhook and notification delivery (outbox) tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["NotificationDelivery", "Webhook"]


class Webhook(Base):
    """One tenant's subscription: where alert events go, in which shape, signed with what.

    ``secret`` is stored as given, because it must sign every delivery (HMAC needs the key
    itself, not a hash of it); it is shown once, when the webhook is created.
    """

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_enabled", "tenant_id", "enabled"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(16))
    """``generic``, ``slack``, ``teams``, ``servicenow`` or ``jira``."""
    secret: Mapped[str] = mapped_column(String(256))
    min_severity: Mapped[str | None] = mapped_column(String(16), default=None)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """The alert events sent (``opened``, ``updated``, ``reopened``, ``resolved``,
    ``acknowledged``)."""
    project_key: Mapped[str | None] = mapped_column(String(64), default=None)
    """Jira only: the project new issues go to."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)


class NotificationDelivery(Base):
    """One alert event to deliver to one webhook (the outbox row), and how that went.

    ``payload`` is the alert as it was when the event happened (the generic shape, without
    the dashboard link); it is rendered in the webhook's kind when sent. ``status`` is
    ``pending`` (waiting for ``next_attempt_at``), ``delivered`` or ``failed``. The row id
    is the ``X-DexScope-Delivery`` header, the same on every retry.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_webhook", "webhook_id", "created_at"),
        Index("ix_notification_deliveries_alert", "alert_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    """The HTTP status of the last attempt (None: no response, see ``last_error``)."""
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
