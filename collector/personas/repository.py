"""SQL for tenant personas and the persona columns of devices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from collector.devices.models import Device
from collector.personas.models import TenantPersona

__all__ = ["PersonaRepository"]


class PersonaRepository:
    """Reads and writes tenant personas; reads and updates device persona assignments."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def for_tenant(self, tenant_id: uuid.UUID) -> list[TenantPersona]:
        """The tenant's stored personas, by name."""
        return list(
            self.session.scalars(
                select(TenantPersona)
                .where(TenantPersona.tenant_id == tenant_id)
                .order_by(TenantPersona.name)
            )
        )

    def find(self, tenant_id: uuid.UUID, name: str) -> TenantPersona | None:
        """The tenant's persona of this name, if stored."""
        return self.session.scalar(
            select(TenantPersona).where(
                TenantPersona.tenant_id == tenant_id, TenantPersona.name == name
            )
        )

    def add(self, persona: TenantPersona) -> None:
        """Stage a new persona (IntegrityError on flush if the name is taken)."""
        self.session.add(persona)
        self.session.flush()

    def device_counts(self, tenant_id: uuid.UUID | None) -> dict[str, int]:
        """Devices per assigned persona, in ``tenant_id`` (None = every tenant)."""
        query = select(Device.persona, func.count()).where(Device.persona.is_not(None))
        if tenant_id is not None:
            query = query.where(Device.tenant_id == tenant_id)
        rows = self.session.execute(query.group_by(Device.persona))
        return {str(row[0]): int(row[1]) for row in rows}

    def assignment_rows(self, tenant_id: uuid.UUID) -> Sequence[Row[Any]]:
        """What assignment needs of every device of the tenant (columns, not objects)."""
        return self.session.execute(
            select(
                Device.id,
                Device.hostname,
                Device.os,
                Device.hardware,
                Device.tags,
                Device.persona_hint,
                Device.persona_override,
                Device.persona,
                Device.persona_source,
            ).where(Device.tenant_id == tenant_id)
        ).all()

    def update_assignments(self, changes: Sequence[dict[str, Any]]) -> None:
        """Write ``{"id", "persona", "persona_source"}`` per device, in one bulk UPDATE."""
        if changes:
            self.session.execute(update(Device), list(changes))
