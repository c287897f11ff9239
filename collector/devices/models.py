"""Device tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["Device", "DeviceToken"]


class Device(Base):
    """One enrolled workstation."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_tenant_hostname", "tenant_id", "hostname"),
        Index("ix_devices_tenant_persona", "tenant_id", "persona"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    hostname: Mapped[str] = mapped_column(String(253))
    os: Mapped[str] = mapped_column(String(16))
    os_version: Mapped[str] = mapped_column(String(128))
    hardware: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    agent_version: Mapped[str] = mapped_column(String(64))
    persona_hint: Mapped[str | None] = mapped_column(String(64), default=None)
    """The persona the installer suggested (``--persona-hint``), as sent."""
    persona: Mapped[str | None] = mapped_column(String(64), default=None)
    """The assigned persona (see :mod:`collector.personas`)."""
    persona_source: Mapped[str | None] = mapped_column(String(32), default=None)
    """Why it was assigned: ``override``, ``rule``, ``hint`` or ``default``."""
    persona_override: Mapped[str | None] = mapped_column(String(64), default=None)
    """A persona set by hand (``PUT /api/v1/devices/{id}/persona``); wins over rules."""
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class DeviceToken(Base):
    """The bearer secret a device authenticates with (stored as a SHA-256 hash)."""

    __tablename__ = "device_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
