"""SQL of detection and alerts: the windows of data detectors read, and the alert rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.alerts.models import Alert
from collector.db import chunks
from collector.devices.models import Device
from collector.ingest.models import Event
from collector.ingest.repository import new_since
from collector.scores.models import DeviceAppDay, DeviceDayScore

__all__ = ["AlertRepository"]


class AlertRepository:
    """Reads detection inputs; reads and writes alerts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def devices(self, tenant_id: uuid.UUID) -> list[Device]:
        """The tenant's devices."""
        return list(
            self.session.scalars(
                select(Device).where(Device.tenant_id == tenant_id).order_by(Device.id)
            )
        )

    def events(
        self, tenant_id: uuid.UUID, types: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID, str, datetime, dict[str, Any]]]:
        """(device_id, type, ts, data) of the tenant's events of ``types``, start < ts <= end.

        Used for the sparse types only (software changes, crashes, hangs), in a fixed order.
        """
        rows = self.session.execute(
            select(Event.device_id, Event.type, Event.ts, Event.data)
            .where(
                Event.tenant_id == tenant_id,
                Event.type.in_(types),
                Event.ts > start,
                Event.ts <= end,
            )
            .order_by(Event.ts, Event.device_id, Event.event_id)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def event_rows(
        self,
        tenant_id: uuid.UUID,
        types: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        received_after: datetime | None = None,
        ts_after: datetime | None = None,
    ) -> list[tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]]:
        """(pk, device_id, type, ts, event_id, data) of events of ``types``, start < ts <= end.

        With ``received_after`` and ``ts_after``: only those new since a run that read up to
        them — timestamped after ``ts_after``, or in a batch received after
        ``received_after`` (late data). Two queries, each on its own index. Unordered.
        """
        cols = (Event.id, Event.device_id, Event.type, Event.ts, Event.event_id, Event.data)
        base = [
            Event.tenant_id == tenant_id,
            Event.type.in_(types),
            Event.ts > start,
            Event.ts <= end,
        ]
        incremental = received_after is not None and ts_after is not None
        out: dict[int, tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]] = {}
        for where in new_since(
            self.session,
            tenant_id,
            base,
            received_after=received_after if incremental else None,
            ts_after=ts_after if incremental else None,
        ):
            for r in self.session.execute(select(*cols).where(*where)):
                out[r[0]] = (r[0], r[1], r[2], r[3], r[4], r[5])
        return list(out.values())

    def rollups(
        self, tenant_id: uuid.UUID, start: date, end: date, *, computed_after: datetime | None
    ) -> list[
        tuple[uuid.UUID, date, float, dict[str, Any], dict[str, Any], float | None, dict[str, Any]]
    ]:
        """(device_id, day, active_s, counts, metrics, score, measures) of scored days,
        only those (re)computed after ``computed_after`` if given."""
        t = DeviceDayScore
        stmt = select(
            t.device_id, t.day, t.active_s, t.counts, t.metrics, t.score, t.measures
        ).where(t.tenant_id == tenant_id, t.day >= start, t.day <= end)
        if computed_after is not None:
            stmt = stmt.where(t.computed_at >= computed_after)
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in self.session.execute(stmt)]

    def app_presence_on(
        self, tenant_id: uuid.UUID, days: Sequence[date]
    ) -> dict[tuple[uuid.UUID, date], list[str]]:
        """The apps present on each device-day of ``days``."""
        t = DeviceAppDay
        out: dict[tuple[uuid.UUID, date], list[str]] = {}
        for chunk in chunks(sorted(set(days))):
            rows = self.session.execute(
                select(t.device_id, t.day, t.app_name).where(
                    t.tenant_id == tenant_id, t.day.in_(chunk)
                )
            )
            for device, day, app in rows:
                out.setdefault((device, day), []).append(app)
        return out

    def day_rows(
        self, tenant_id: uuid.UUID, start: date, end: date
    ) -> list[tuple[uuid.UUID, date, float, dict[str, Any], dict[str, Any], float | None]]:
        """(device_id, day, active_s, counts, metrics, score) of the tenant's scored days."""
        t = DeviceDayScore
        rows = self.session.execute(
            select(t.device_id, t.day, t.active_s, t.counts, t.metrics, t.score)
            .where(t.tenant_id == tenant_id, t.day >= start, t.day <= end)
            .order_by(t.device_id, t.day)
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def day_measures(
        self, tenant_id: uuid.UUID, start: date, end: date
    ) -> dict[tuple[uuid.UUID, date], dict[str, Any]]:
        """The raw daily measures of the tenant's scored device-days."""
        t = DeviceDayScore
        rows = self.session.execute(
            select(t.device_id, t.day, t.measures).where(
                t.tenant_id == tenant_id, t.day >= start, t.day <= end
            )
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def app_presence(
        self, tenant_id: uuid.UUID, start: date, end: date
    ) -> list[tuple[uuid.UUID, date, str]]:
        """(device_id, day, app_name) where an app was present on a device-day."""
        t = DeviceAppDay
        rows = self.session.execute(
            select(t.device_id, t.day, t.app_name)
            .where(t.tenant_id == tenant_id, t.day >= start, t.day <= end)
            .order_by(t.device_id, t.day, t.app_name)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def active_alerts(self, tenant_id: uuid.UUID) -> list[Alert]:
        """The tenant's open and acknowledged alerts."""
        return list(
            self.session.scalars(
                select(Alert)
                .where(Alert.tenant_id == tenant_id, Alert.status != "resolved")
                .order_by(Alert.detected_at, Alert.id)
            )
        )

    def alerts_detected_after(self, tenant_id: uuid.UUID, when: datetime) -> list[Alert]:
        """Alerts of the tenant detected after ``when`` (a replay to an earlier as-of)."""
        return list(
            self.session.scalars(
                select(Alert).where(Alert.tenant_id == tenant_id, Alert.detected_at > when)
            )
        )

    def resolved_after(self, tenant_id: uuid.UUID, when: datetime) -> list[Alert]:
        """Alerts of the tenant resolved after ``when`` (a replay to an earlier as-of)."""
        return list(
            self.session.scalars(
                select(Alert).where(
                    Alert.tenant_id == tenant_id,
                    Alert.status == "resolved",
                    Alert.resolved_at > when,
                )
            )
        )

    def resolved_between(self, tenant_id: uuid.UUID, start: datetime, end: datetime) -> list[Alert]:
        """Alerts of the tenant resolved in (start, end], the latest resolution last."""
        return list(
            self.session.scalars(
                select(Alert)
                .where(
                    Alert.tenant_id == tenant_id,
                    Alert.status == "resolved",
                    Alert.resolved_at > start,
                    Alert.resolved_at <= end,
                )
                .order_by(Alert.resolved_at, Alert.id)
            )
        )

    def reopened_after(self, tenant_id: uuid.UUID, when: datetime) -> list[Alert]:
        """Alerts of the tenant last reopened after ``when`` (a replay to an earlier as-of)."""
        return list(
            self.session.scalars(
                select(Alert).where(Alert.tenant_id == tenant_id, Alert.reopened_at > when)
            )
        )

    def add(self, alert: Alert) -> None:
        """Stage a new alert."""
        self.session.add(alert)

    def delete(self, alert: Alert) -> None:
        """Remove an alert (only a replay to an earlier as-of does this)."""
        self.session.delete(alert)

    def list(
        self,
        tenant_id: uuid.UUID | None,
        status: str,
        *,
        limit: int,
        offset: int,
    ) -> list[Alert]:
        """Alerts of one tenant (None: all) by status (``all`` for any), newest first."""
        stmt = select(Alert)
        if tenant_id is not None:
            stmt = stmt.where(Alert.tenant_id == tenant_id)
        if status != "all":
            stmt = stmt.where(Alert.status == status)
        stmt = stmt.order_by(Alert.detected_at.desc(), Alert.id).limit(limit).offset(offset)
        return list(self.session.scalars(stmt))

    def get(self, alert_id: uuid.UUID) -> Alert | None:
        """One alert by id (the caller checks the tenant)."""
        return self.session.get(Alert, alert_id)
