"""The persona table: a tenant's persona definitions and their assignment rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["TenantPersona"]


class TenantPersona(Base):
    """One persona of a tenant: overrides of a built-in, or a custom persona extending one.

    ``definition`` holds only what differs from the base (thresholds, frustrating levels,
    weights, minimum data, costs), so a change of a built-in default reaches every tenant
    that did not override that value. ``version`` goes up by one on every change.
    """

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    """None: the base persona's description."""
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    base: Mapped[str | None] = mapped_column(String(64), default=None)
    """The built-in this persona extends (None: itself when it is a built-in's name, else
    the default persona)."""
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    """Rules of personas with a lower priority are tried first (ties: by name)."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
