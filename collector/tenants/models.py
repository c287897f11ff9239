"""Tenant tables."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, JSONType, UTCDateTime, new_uuid, utcnow

__all__ = ["EnrollmentToken", "Tenant", "new_pseudonym_key"]


def new_pseudonym_key() -> str:
    """A new random tenant pseudonym key (64 hex characters)."""
    return secrets.token_hex(32)


class Tenant(Base):
    """One client of the MSP; every other row belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    agent_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    pseudonym_key: Mapped[str] = mapped_column(String(64), default=new_pseudonym_key)
    """Key of the HMAC with which agents hash user names (hex, 256 bits; never shown)."""


class EnrollmentToken(Base):
    """A secret given to installers so devices can enroll into one tenant (stored hashed)."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    uses: Mapped[int] = mapped_column(default=0)
