"""Tenant use cases: create a tenant with its first enrollment token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from collector.errors import Conflict, Forbidden, UnprocessableEntity
from collector.identity.roles import Identity
from collector.security import ENROLLMENT_TOKEN_PREFIX, hash_token, new_token
from collector.tenants.models import EnrollmentToken, Tenant
from collector.tenants.repository import TenantRepository

__all__ = ["CreatedTenant", "create_enrollment_token", "create_tenant", "target_tenant"]


@dataclass(frozen=True)
class CreatedTenant:
    """A new tenant and the clear-text enrollment token (shown once, stored hashed)."""

    tenant_id: uuid.UUID
    enrollment_token: str


def create_tenant(session: Session, name: str) -> CreatedTenant:
    """Create tenant ``name`` and an enrollment token for its installers; commits."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UnprocessableEntity("tenant name must be 1 to 200 characters", field="name")
    repo = TenantRepository(session)
    if repo.get_by_name(name) is not None:
        raise Conflict(f"a tenant named {name!r} already exists", code="tenant_exists")
    tenant = repo.add(Tenant(name=name))
    token = create_enrollment_token(session, tenant.id)
    session.commit()
    return CreatedTenant(tenant_id=tenant.id, enrollment_token=token)


def create_enrollment_token(
    session: Session, tenant_id: uuid.UUID, *, expires_at: datetime | None = None
) -> str:
    """Stage a new enrollment token for ``tenant_id`` and return it in clear (once)."""
    token = new_token(ENROLLMENT_TOKEN_PREFIX)
    TenantRepository(session).add_enrollment_token(
        EnrollmentToken(tenant_id=tenant_id, token_hash=hash_token(token), expires_at=expires_at)
    )
    return token


def target_tenant(
    session: Session, identity: Identity, requested: uuid.UUID | None, action: str
) -> uuid.UUID:
    """The tenant a write goes to: the caller's own, or the one an MSP-wide caller names.

    A tenant-bound caller naming another tenant gets 403 ``other_tenant``; an MSP-wide
    caller must name an existing tenant (422 on ``tenant_id``). ``action`` completes the
    refusal, e.g. "create campaigns".
    """
    if identity.tenant_id is not None:
        if requested is not None and requested != identity.tenant_id:
            raise Forbidden(
                f"this caller may only {action} in its own tenant",
                code="other_tenant",
                field="tenant_id",
            )
        return identity.tenant_id
    if requested is None:
        raise UnprocessableEntity(
            "tenant_id: required for a caller not bound to a tenant", field="tenant_id"
        )
    if TenantRepository(session).get(requested) is None:
        raise UnprocessableEntity(
            f"tenant_id: no tenant {requested}", code="unknown_tenant", field="tenant_id"
        )
    return requested
