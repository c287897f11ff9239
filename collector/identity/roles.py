"""Roles and the caller identity every API route is authorised against."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Identity", "Role"]


class Role(StrEnum):
    """What a user or API key may do.

    ``admin`` manages everything (of its tenant, or of all tenants when unbound: the MSP's
    staff); ``analyst`` reads and works alerts; ``viewer`` is a client's read-only account
    and is always bound to exactly one tenant.
    """

    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Identity:
    """Who is calling: an API key or a signed-in user."""

    kind: str
    subject_id: uuid.UUID
    role: Role
    tenant_id: uuid.UUID | None
    """None only for MSP-wide staff (admin/analyst not bound to a tenant)."""

    def visible_tenant(self, requested: uuid.UUID | None) -> uuid.UUID | None:
        """The tenant a query must be limited to (None = all tenants)."""
        if self.tenant_id is not None:
            return self.tenant_id
        return requested
