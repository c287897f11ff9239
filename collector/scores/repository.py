"""SQL of the scores: which device-days are new, their events, and the rollup rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from collector.db import chunks
from collector.devices.models import Device
from collector.ingest.models import Event
from collector.ingest.repository import new_since
from collector.scores.models import DeviceAppDay, DeviceDayScore, ScoringWatermark

__all__ = ["ScoresRepository"]


class ScoresRepository:
    """Reads events for scoring and reads/writes the score rollups."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def delete_rollups_before(self, cutoff: date) -> tuple[int, int]:
        """Delete device-day and device-app-day rollups of days before ``cutoff``; returns
        how many of each went (rollup retention: run daily, it removes about a day)."""
        days = self.session.execute(delete(DeviceDayScore).where(DeviceDayScore.day < cutoff))
        apps = self.session.execute(delete(DeviceAppDay).where(DeviceAppDay.day < cutoff))
        return int(getattr(days, "rowcount", 0) or 0), int(getattr(apps, "rowcount", 0) or 0)

    # -- the job ------------------------------------------------------------------------

    def tenants_with_devices(self) -> list[uuid.UUID]:
        """Every tenant that has at least one device, in a stable order."""
        return list(
            self.session.scalars(select(Device.tenant_id).distinct().order_by(Device.tenant_id))
        )

    def watermark(self, tenant_id: uuid.UUID) -> ScoringWatermark | None:
        """The tenant's scoring watermark, if the job has run for it."""
        return self.session.get(ScoringWatermark, tenant_id)

    def save_watermark(
        self, tenant_id: uuid.UUID, received_through: datetime, as_of: datetime
    ) -> None:
        """Create or move the tenant's watermark."""
        mark = self.session.get(ScoringWatermark, tenant_id)
        if mark is None:
            self.session.add(
                ScoringWatermark(
                    tenant_id=tenant_id, received_through=received_through, as_of=as_of
                )
            )
        else:
            mark.received_through = received_through
            mark.as_of = as_of
            mark.updated_at = datetime.now(received_through.tzinfo)

    def changed_spans(
        self,
        tenant_id: uuid.UUID,
        types: Sequence[str],
        as_of: datetime,
        received_after: datetime | None,
        ts_after: datetime | None,
    ) -> list[Row[tuple[uuid.UUID, str, datetime, datetime]]]:
        """Per device and type, the first and last ``ts`` of events that are new to scoring.

        New: in a batch received after ``received_after``, or timestamped after ``ts_after``
        (data that a previous run's as-of left out); always ``ts <= as_of``. None for both:
        every event up to ``as_of`` (:func:`collector.ingest.repository.new_since`).
        """
        base = [Event.tenant_id == tenant_id, Event.type.in_(types), Event.ts <= as_of]
        spans: dict[tuple[uuid.UUID, str], tuple[datetime, datetime]] = {}
        for where in new_since(
            self.session, tenant_id, base, received_after=received_after, ts_after=ts_after
        ):
            stmt = (
                select(Event.device_id, Event.type, func.min(Event.ts), func.max(Event.ts))
                .where(and_(*where))
                .group_by(Event.device_id, Event.type)
            )
            for device, kind, lo, hi in self.session.execute(stmt):
                if (device, kind) in spans:
                    old = spans[(device, kind)]
                    lo, hi = min(lo, old[0]), max(hi, old[1])
                spans[(device, kind)] = (lo, hi)
        return [(d, k, lo, hi) for (d, k), (lo, hi) in spans.items()]  # type: ignore[misc]

    def devices(self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Device]:
        """The tenant's devices among ``ids``."""
        return list(
            self.session.scalars(
                select(Device).where(Device.tenant_id == tenant_id, Device.id.in_(ids))
            )
        )

    def events(
        self,
        device_ids: Sequence[uuid.UUID],
        types: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> Iterator[tuple[uuid.UUID, str, datetime, dict[str, Any]]]:
        """Events of these devices and types with ``start <= ts <= end``, in a fixed order.

        Ordered by device, time and event id so that every run (and every database) feeds
        the scoring core the same arrays in the same order: identical sums, identical scores.
        """
        stmt = (
            select(Event.device_id, Event.type, Event.ts, Event.data)
            .where(
                Event.device_id.in_(device_ids),
                Event.type.in_(types),
                Event.ts >= start,
                Event.ts <= end,
            )
            .order_by(Event.device_id, Event.ts, Event.event_id)
            .execution_options(yield_per=5000)
        )
        for row in self.session.execute(stmt):
            yield row[0], row[1], row[2], row[3]

    def event_rows(
        self,
        tenant_id: uuid.UUID,
        device_ids: Sequence[uuid.UUID],
        types: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        received_after: datetime | None = None,
        ts_after: datetime | None = None,
    ) -> list[tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]]:
        """(pk, device_id, type, ts, event_id, data) of events with ``start <= ts <= end``.

        With ``received_after`` / ``ts_after``: only the events new to scoring since the
        watermark (:func:`collector.ingest.repository.new_since`), which the job adds to the
        days it keeps. The order is left to the caller (it sorts by ``ts`` and ``event_id``
        itself, the same on every database).
        """
        base: list[ColumnElement[bool]] = [
            Event.device_id.in_(device_ids),
            Event.type.in_(types),
            Event.ts >= start,
            Event.ts <= end,
        ]
        cols = (Event.id, Event.device_id, Event.type, Event.ts, Event.event_id, Event.data)
        out: dict[int, tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]] = {}
        for where in new_since(
            self.session, tenant_id, base, received_after=received_after, ts_after=ts_after
        ):
            for r in self.session.execute(select(*cols).where(and_(*where))):
                out[r[0]] = (r[0], r[1], r[2], r[3], r[4], r[5])
        return list(out.values())

    def tenant_events(
        self, tenant_id: uuid.UUID, types: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]]:
        """(device_id, type, ts, event_id, data) of a tenant's events with ``start <= ts <=
        end``: for sparse types (survey answers), read once per run on the tenant's type
        index rather than once per block of devices."""
        stmt = select(Event.device_id, Event.type, Event.ts, Event.event_id, Event.data).where(
            Event.tenant_id == tenant_id,
            Event.type.in_(types),
            Event.ts >= start,
            Event.ts <= end,
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self.session.execute(stmt)]

    def replace_days(
        self,
        keys: Sequence[tuple[uuid.UUID, date]],
        device_days: Sequence[dict[str, Any]],
        app_days: Sequence[dict[str, Any]],
    ) -> None:
        """Replace the rollups of the device-days ``keys`` with the rows given.

        Delete-then-insert in the caller's transaction: a device-day that lost its data
        loses its row, and a re-run writes exactly what a first run would.
        """
        for chunk in chunks(keys):
            for model in (DeviceDayScore, DeviceAppDay):
                self.session.execute(
                    delete(model).where(tuple_(model.device_id, model.day).in_(chunk))
                )
        if device_days:
            self.session.execute(insert(DeviceDayScore), list(device_days))
        if app_days:
            self.session.execute(insert(DeviceAppDay), list(app_days))

    def delete_after(self, tenant_id: uuid.UUID, day: date) -> None:
        """Drop the tenant's rollups of days after ``day`` (a job re-run at an earlier as-of)."""
        for model in (DeviceDayScore, DeviceAppDay):
            self.session.execute(delete(model).where(model.tenant_id == tenant_id, model.day > day))

    # -- the API ------------------------------------------------------------------------

    def device_days(
        self,
        tenant_id: uuid.UUID | None,
        start: date,
        end: date,
        *,
        device_id: uuid.UUID | None = None,
        persona: str | None = None,
    ) -> list[Row[tuple[Any, ...]]]:
        """Device-day rows between two days (inclusive), optionally of one device/persona.

        Columns: device_id, day, tenant_id, persona, score, the four sub-scores,
        time_lost_min — plain tuples, no ORM objects (aggregates read many rows).
        """
        t = DeviceDayScore
        stmt = select(
            t.device_id,
            t.day,
            t.tenant_id,
            t.persona,
            t.score,
            t.startup,
            t.responsiveness,
            t.stability,
            t.sentiment,
            t.time_lost_min,
        ).where(t.day >= start, t.day <= end)
        if tenant_id is not None:
            stmt = stmt.where(t.tenant_id == tenant_id)
        if device_id is not None:
            stmt = stmt.where(t.device_id == device_id)
        if persona is not None:
            stmt = stmt.where(t.persona == persona)
        return list(self.session.execute(stmt.order_by(t.day, t.device_id)))

    def device_day(self, device_id: uuid.UUID, day: date) -> DeviceDayScore | None:
        """One device-day's full row."""
        return self.session.get(DeviceDayScore, (device_id, day))

    def points_lost(
        self,
        tenant_id: uuid.UUID | None,
        start: date,
        end: date,
        *,
        persona: str | None = None,
        device_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[Row[tuple[uuid.UUID, dict[str, Any], dict[str, Any], float | None]]]:
        """(device_id, points_lost, time_lost, score) of the device-days in a scope."""
        t = DeviceDayScore
        stmt = select(t.device_id, t.points_lost, t.time_lost, t.score).where(
            t.day >= start, t.day <= end
        )
        if tenant_id is not None:
            stmt = stmt.where(t.tenant_id == tenant_id)
        if persona is not None:
            stmt = stmt.where(t.persona == persona)
        if device_ids is not None:
            stmt = stmt.where(t.device_id.in_(device_ids))
        return list(self.session.execute(stmt.order_by(t.device_id, t.day)))

    def app_days(
        self,
        tenant_id: uuid.UUID | None,
        start: date,
        end: date,
        *,
        app_name: str | None = None,
        device_id: uuid.UUID | None = None,
    ) -> list[DeviceAppDay]:
        """(device, app)-day rows between two days (inclusive)."""
        stmt = select(DeviceAppDay).where(DeviceAppDay.day >= start, DeviceAppDay.day <= end)
        if tenant_id is not None:
            stmt = stmt.where(DeviceAppDay.tenant_id == tenant_id)
        if app_name is not None:
            stmt = stmt.where(DeviceAppDay.app_name == app_name)
        if device_id is not None:
            stmt = stmt.where(DeviceAppDay.device_id == device_id)
        return list(
            self.session.scalars(
                stmt.order_by(DeviceAppDay.day, DeviceAppDay.app_name, DeviceAppDay.device_id)
            )
        )

    def latest_day(self, tenant_id: uuid.UUID | None) -> date | None:
        """The most recent scored day (of one tenant, or of all)."""
        stmt = select(func.max(DeviceDayScore.day))
        if tenant_id is not None:
            stmt = stmt.where(DeviceDayScore.tenant_id == tenant_id)
        return self.session.scalar(stmt)

    def device(self, device_id: uuid.UUID) -> Device | None:
        """A device by id (the caller checks its tenant)."""
        return self.session.get(Device, device_id)

    def device_groups(self, device_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """The ``group`` tag of each device id (None without one)."""
        rows = self.session.execute(select(Device.id, Device.tags).where(Device.id.in_(device_ids)))
        return {row[0]: (row[1] or {}).get("group") for row in rows}

    def devices_in_group(self, tenant_id: uuid.UUID | None, group: str | None) -> list[uuid.UUID]:
        """Ids of the devices whose ``group`` tag is ``group`` (None: devices without one)."""
        stmt = select(Device.id, Device.tags)
        if tenant_id is not None:
            stmt = stmt.where(Device.tenant_id == tenant_id)
        return sorted(
            row[0] for row in self.session.execute(stmt) if (row[1] or {}).get("group") == group
        )
