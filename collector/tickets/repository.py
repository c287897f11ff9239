"""SQL for tickets, and the device and alert reads that matching needs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from collector.alerts.models import Alert
from collector.devices.models import Device
from collector.tickets.models import Ticket

__all__ = ["AlertWindowRow", "DeviceHostRow", "TicketRepository"]

DeviceHostRow = tuple[uuid.UUID, str, datetime | None, datetime]
"""``(device id, hostname, last_seen_at, enrolled_at)``."""
AlertWindowRow = tuple[uuid.UUID, datetime, datetime | None, list[str], str, str]
"""``(alert id, onset, resolved_at, affected device ids, scope, scope key)``."""

_CHUNK = 500
"""Rows per multi-row statement (well under both backends' bound-parameter limits)."""
_UPDATED_ON_CONFLICT = (
    "opened_at",
    "device_hostname",
    "user_hash",
    "category",
    "summary",
    "extra",
    "device_id",
    "alert_id",
    "updated_at",
)


class TicketRepository:
    """Reads and writes tickets."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def existing_external_ids(self, tenant_id: uuid.UUID, external_ids: Sequence[str]) -> set[str]:
        """Which of ``external_ids`` the tenant already has."""
        found: set[str] = set()
        for start in range(0, len(external_ids), _CHUNK):
            chunk = list(external_ids[start : start + _CHUNK])
            found.update(
                self.session.scalars(
                    select(Ticket.external_id).where(
                        Ticket.tenant_id == tenant_id, Ticket.external_id.in_(chunk)
                    )
                )
            )
        return found

    def upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert tickets, or update the stored ones with the same ``(tenant_id, external_id)``.

        ``INSERT … ON CONFLICT DO UPDATE`` on both backends, so two imports of one ticket
        at the same time still leave one row. The stored ``id`` and ``created_at`` are kept.
        """
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        for start in range(0, len(rows), _CHUNK):
            stmt = insert(Ticket).values(list(rows[start : start + _CHUNK]))
            stmt = stmt.on_conflict_do_update(
                index_elements=[Ticket.tenant_id, Ticket.external_id],
                set_={name: stmt.excluded[name] for name in _UPDATED_ON_CONFLICT},
            )
            self.session.execute(stmt)

    def device_hosts(self, tenant_id: uuid.UUID) -> list[DeviceHostRow]:
        """Every device of the tenant with its hostname and when it was last seen."""
        rows = self.session.execute(
            select(Device.id, Device.hostname, Device.last_seen_at, Device.enrolled_at).where(
                Device.tenant_id == tenant_id
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def alert_windows(self, tenant_id: uuid.UUID) -> list[AlertWindowRow]:
        """Every alert of the tenant with what matching needs, earliest onset first."""
        rows = self.session.execute(
            select(
                Alert.id,
                Alert.onset,
                Alert.resolved_at,
                Alert.affected_device_ids,
                Alert.scope,
                Alert.scope_key,
            )
            .where(Alert.tenant_id == tenant_id)
            .order_by(Alert.onset, Alert.detected_at, Alert.id)
        )
        return [(r[0], r[1], r[2], list(r[3] or []), r[4], r[5]) for r in rows]

    def for_matching(self, tenant_id: uuid.UUID, since: datetime | None) -> list[Ticket]:
        """Tickets whose match may change: matched to an alert, opened at or after
        ``since`` (None: none by date), or not yet matched to a device though named one."""
        conditions: list[ColumnElement[bool]] = [
            Ticket.alert_id.is_not(None),
            Ticket.device_id.is_(None) & Ticket.device_hostname.is_not(None),
        ]
        if since is not None:
            conditions.append(Ticket.opened_at >= since)
        return list(
            self.session.scalars(
                select(Ticket).where(Ticket.tenant_id == tenant_id, or_(*conditions))
            )
        )

    def page(
        self,
        tenant_id: uuid.UUID | None,
        *,
        opened_from: datetime | None,
        opened_to: datetime | None,
        alert_id: uuid.UUID | None,
        device_id: uuid.UUID | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Ticket], int]:
        """One page of matching tickets (oldest first) and how many match in all."""
        query = select(Ticket)
        if tenant_id is not None:
            query = query.where(Ticket.tenant_id == tenant_id)
        if opened_from is not None:
            query = query.where(Ticket.opened_at >= opened_from)
        if opened_to is not None:
            query = query.where(Ticket.opened_at < opened_to)
        if alert_id is not None:
            query = query.where(Ticket.alert_id == alert_id)
        if device_id is not None:
            query = query.where(Ticket.device_id == device_id)
        total = int(self.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        items = self.session.scalars(
            query.order_by(Ticket.opened_at, Ticket.external_id).limit(limit).offset(offset)
        )
        return list(items), total

    def by_external_ids(self, tenant_id: uuid.UUID, external_ids: Iterable[str]) -> list[Ticket]:
        """The tenant's tickets with these external ids."""
        ids = list(external_ids)
        out: list[Ticket] = []
        for start in range(0, len(ids), _CHUNK):
            out.extend(
                self.session.scalars(
                    select(Ticket).where(
                        Ticket.tenant_id == tenant_id,
                        Ticket.external_id.in_(ids[start : start + _CHUNK]),
                    )
                )
            )
        return out

    def first_opened_for_alert(self, alert_id: uuid.UUID) -> datetime | None:
        """When the first ticket matched to the alert was opened."""
        value: datetime | None = self.session.scalar(
            select(func.min(Ticket.opened_at)).where(Ticket.alert_id == alert_id)
        )
        return value

    def for_alert(self, alert_id: uuid.UUID) -> list[Ticket]:
        """The tickets matched to the alert, oldest first."""
        return list(
            self.session.scalars(
                select(Ticket)
                .where(Ticket.alert_id == alert_id)
                .order_by(Ticket.opened_at, Ticket.external_id)
            )
        )

    def set_matches(
        self, changes: Sequence[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]]
    ) -> None:
        """Store new ``(ticket id, device id, alert id)`` matches."""
        for ticket_id, device_id, alert_id in changes:
            self.session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(device_id=device_id, alert_id=alert_id)
            )
