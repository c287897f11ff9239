"""SQL for devices and device tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collector.db import chunks
from collector.devices.models import Device, DeviceToken
from collector.ingest.models import Event

__all__ = ["DeviceRepository"]


class DeviceRepository:
    """Reads and writes devices and their tokens."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def hostnames(self, device_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Hostname of each device id (unknown ids are absent), in chunks that stay under
        both backends' bound-parameter limits."""
        out: dict[uuid.UUID, str] = {}
        for chunk in chunks(dict.fromkeys(device_ids)):
            rows = self.session.execute(
                select(Device.id, Device.hostname).where(Device.id.in_(chunk))
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    def add(self, device: Device, token: DeviceToken) -> None:
        """Stage a new device with its token."""
        self.session.add(device)
        self.session.flush()
        token.device_id = device.id
        self.session.add(token)
        self.session.flush()

    def token_with_device(self, token_hash: str) -> tuple[DeviceToken, Device] | None:
        """A device token and its device, by token hash."""
        row = self.session.execute(
            select(DeviceToken, Device)
            .join(Device, Device.id == DeviceToken.device_id)
            .where(DeviceToken.token_hash == token_hash)
        ).first()
        return (row[0], row[1]) if row else None

    def get(self, device_id: uuid.UUID, tenant_id: uuid.UUID | None) -> Device | None:
        """One device, if it exists and belongs to ``tenant_id`` (None = any tenant)."""
        query = select(Device).where(Device.id == device_id)
        if tenant_id is not None:
            query = query.where(Device.tenant_id == tenant_id)
        return self.session.scalar(query)

    def page(
        self, tenant_id: uuid.UUID | None, *, limit: int, offset: int
    ) -> tuple[list[Device], int]:
        """A page of devices by hostname, and the total count."""
        query = select(Device)
        count = select(func.count()).select_from(Device)
        if tenant_id is not None:
            query = query.where(Device.tenant_id == tenant_id)
            count = count.where(Device.tenant_id == tenant_id)
        rows = self.session.scalars(
            query.order_by(Device.hostname, Device.id).limit(limit).offset(offset)
        )
        return list(rows), int(self.session.scalar(count) or 0)

    def event_summary(self, device_id: uuid.UUID) -> dict[str, tuple[int, datetime]]:
        """Per event type: how many events the device sent, and the newest timestamp."""
        rows = self.session.execute(
            select(Event.type, func.count(), func.max(Event.ts))
            .where(Event.device_id == device_id)
            .group_by(Event.type)
        )
        return {row[0]: (int(row[1]), row[2]) for row in rows}

    def events(
        self, device_id: uuid.UUID, *, event_type: str | None, after_id: int, limit: int
    ) -> list[Event]:
        """A page of a device's raw events in arrival order (keyset pagination on id)."""
        query = select(Event).where(Event.device_id == device_id, Event.id > after_id)
        if event_type is not None:
            query = query.where(Event.type == event_type)
        return list(self.session.scalars(query.order_by(Event.id).limit(limit)))
