"""SQL for tenants and enrollment tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.tenants.models import EnrollmentToken, Tenant

__all__ = ["TenantRepository"]


class TenantRepository:
    """Reads and writes tenants and their enrollment tokens."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        """The tenant with this id, if any."""
        return self.session.get(Tenant, tenant_id)

    def get_by_name(self, name: str) -> Tenant | None:
        """The tenant with this name, if any."""
        return self.session.scalar(select(Tenant).where(Tenant.name == name))

    def all(self) -> list[Tenant]:
        """Every tenant, by name."""
        return list(self.session.scalars(select(Tenant).order_by(Tenant.name)))

    def add(self, tenant: Tenant) -> Tenant:
        """Stage a new tenant."""
        self.session.add(tenant)
        self.session.flush()
        return tenant

    def add_enrollment_token(self, token: EnrollmentToken) -> EnrollmentToken:
        """Stage a new enrollment token."""
        self.session.add(token)
        self.session.flush()
        return token

    def enrollment_token_by_hash(self, token_hash: str) -> EnrollmentToken | None:
        """The enrollment token with this hash, if any."""
        return self.session.scalar(
            select(EnrollmentToken).where(EnrollmentToken.token_hash == token_hash)
        )
