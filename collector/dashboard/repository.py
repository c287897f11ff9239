"""SQL of the dashboard: aggregates over the stored rollups, and one device's raw events.

Every fleet-level figure is one SQL aggregate (``AVG`` / ``COUNT`` with ``CASE`` /
``GROUP BY``) over ``device_day_scores`` or ``device_app_days`` limited by the indexed
``(tenant_id, day)`` range, so a page at 100,000 devices reads rollups in the database and
moves only the aggregated rows to Python. Raw events are read only for one device (its
timeline) and for one app's versions over a short recent window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from collector.alerts.models import Alert
from collector.devices.models import Device
from collector.ingest.models import Event
from collector.scores.models import DeviceAppDay, DeviceDayScore, ScoringWatermark
from collector.surveys.models import SurveyCampaign
from collector.tenants.models import Tenant
from scoring.aggregate import FRUSTRATING_BELOW, GOOD_AT
from scoring.personas import METRICS, SUBSCORES
from scoring.time_lost import COMPONENTS

__all__ = ["DEVICE_SORTS", "TIMELINE_TYPES", "DashboardRepository", "Scope"]

TIMELINE_TYPES: Final = (
    "boot",
    "logon",
    "app_hang",
    "app_crash",
    "system_crash",
    "software_change",
    "survey_response",
)
"""The raw event types shown on a device's timeline."""

DEVICE_SORTS: Final = ("hostname", "persona", "score", "time_lost_min", "days", "last_seen_at")
"""Columns the device tables can be sorted by (in SQL)."""


@dataclass(frozen=True)
class Scope:
    """What a page looks at: a tenant (None = every tenant), filters and a day range."""

    tenant_id: uuid.UUID | None
    start: date
    end: date
    persona: str | None = None
    group: str | None = None
    site: str | None = None


def _tag(name: str) -> ColumnElement[str]:
    column: ColumnElement[str] = Device.tags[name].as_string()
    return column


class DashboardRepository:
    """Read-only queries of the dashboard (plus the alert status update)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- scope helpers ------------------------------------------------------------------

    def _where(self, stmt: Any, model: Any, scope: Scope) -> Any:
        stmt = stmt.where(model.day >= scope.start, model.day <= scope.end)
        if scope.tenant_id is not None:
            stmt = stmt.where(model.tenant_id == scope.tenant_id)
        if scope.persona is not None:
            stmt = stmt.where(model.persona == scope.persona)
        if scope.group is not None or scope.site is not None:
            devices = select(Device.id)
            if scope.tenant_id is not None:
                devices = devices.where(Device.tenant_id == scope.tenant_id)
            if scope.group is not None:
                devices = devices.where(_tag("group") == scope.group)
            if scope.site is not None:
                devices = devices.where(_tag("site") == scope.site)
            stmt = stmt.where(model.device_id.in_(devices))
        return stmt

    def data_version(self, tenant_id: uuid.UUID | None) -> tuple[Any, ...]:
        """What changes whenever the scoring job rewrote rollups (the cache key's version)."""
        stmt = select(func.max(ScoringWatermark.updated_at), func.count())
        if tenant_id is not None:
            stmt = stmt.where(ScoringWatermark.tenant_id == tenant_id)
        row = self.session.execute(stmt).one()
        return (row[0], row[1])

    def latest_day(self, tenant_id: uuid.UUID | None) -> date | None:
        """The newest scored day."""
        stmt = select(func.max(DeviceDayScore.day))
        if tenant_id is not None:
            stmt = stmt.where(DeviceDayScore.tenant_id == tenant_id)
        return self.session.scalar(stmt)

    def tenants(self, tenant_id: uuid.UUID | None) -> list[tuple[uuid.UUID, str]]:
        """(id, name) of the tenants visible (one, or all for MSP-wide staff)."""
        stmt = select(Tenant.id, Tenant.name).order_by(Tenant.name)
        if tenant_id is not None:
            stmt = stmt.where(Tenant.id == tenant_id)
        return [(r[0], r[1]) for r in self.session.execute(stmt)]

    def personas_in_use(self, tenant_id: uuid.UUID | None) -> list[str]:
        """Distinct assigned personas of the visible devices."""
        stmt = select(Device.persona).where(Device.persona.is_not(None)).distinct()
        if tenant_id is not None:
            stmt = stmt.where(Device.tenant_id == tenant_id)
        return sorted(str(p) for p in self.session.scalars(stmt))

    def tag_values(self, tenant_id: uuid.UUID | None, tag: str) -> list[str]:
        """Distinct values of one device tag (``group`` or ``site``)."""
        stmt = select(_tag(tag)).where(_tag(tag).is_not(None)).distinct()
        if tenant_id is not None:
            stmt = stmt.where(Device.tenant_id == tenant_id)
        return sorted(str(v) for v in self.session.scalars(stmt))

    # -- score aggregates ---------------------------------------------------------------

    def daily(
        self, scope: Scope, by: str | None = "persona", *, site: bool = False
    ) -> list[dict[str, Any]]:
        """Per day (and per persona, ``by="persona"``; and per site tag, ``site=True``):
        scored devices, sums and band counts.

        Sums and counts rather than means, so that callers can combine rows exactly (the
        fleet = the personas added up; a site = its personas and days added up): the
        overview reads one such cube in one scan.
        """
        t = DeviceDayScore
        cols: list[Any] = [
            t.day,
            func.count(t.score).label("n"),
            func.sum(t.score).label("score_sum"),
            func.sum(case((t.score >= GOOD_AT, 1), else_=0)).label("good"),
            func.sum(case((t.score < FRUSTRATING_BELOW, 1), else_=0)).label("frustrating"),
            func.sum(t.time_lost_min).label("time_lost_min"),
            func.count().label("device_days"),
        ]
        for sub in SUBSCORES:
            column = getattr(t, sub)
            cols += [func.count(column).label(f"{sub}_n"), func.sum(column).label(f"{sub}_sum")]
        group: list[Any] = [t.day]
        if by == "persona":
            cols.insert(1, t.persona)
            group.append(t.persona)
        stmt = select(*cols)
        if site:
            label = func.coalesce(_tag("site"), "").label("site")
            cols.insert(1, label)
            group.append(label)
            stmt = select(*cols).join(Device, Device.id == t.device_id)
        stmt = self._where(stmt, t, scope).group_by(*group).order_by(*group)
        return [dict(r._mapping) for r in self.session.execute(stmt)]

    def losses(self, scope: Scope) -> tuple[dict[str, float], dict[str, float]]:
        """In one scan: minutes lost per component (summed) and points lost per metric
        (mean over the scored device-days) of the scope."""
        t = DeviceDayScore
        scored = t.score.is_not(None)
        cols = [func.sum(cast(t.time_lost[c].as_float(), Float)) for c in COMPONENTS] + [
            func.avg(case((scored, func.coalesce(t.points_lost[m].as_float(), 0.0))))
            for m in METRICS
        ]
        row = self.session.execute(self._where(select(*cols), t, scope)).one()
        minutes = {c: float(row[i] or 0.0) for i, c in enumerate(COMPONENTS)}
        points = {m: float(row[len(COMPONENTS) + i] or 0.0) for i, m in enumerate(METRICS)}
        return minutes, points

    def histogram(self, scope: Scope, day: date, width: int = 10) -> list[tuple[int, int]]:
        """(bin start, devices) of the device scores on one day, ``width``-point bins."""
        t = DeviceDayScore
        bucket = cast(func.floor(t.score / float(width)), Float).label("bucket")
        stmt = (
            self._where(select(bucket, func.count()), t, _on(scope, day))
            .where(t.score.is_not(None))
            .group_by(bucket)
        )
        out: dict[int, int] = {}
        for b, n in self.session.execute(stmt):
            start = min(int(b) * width, 100 - width)
            out[start] = out.get(start, 0) + int(n)
        return sorted(out.items())

    def apps(self, scope: Scope, *, app: str | None = None) -> list[dict[str, Any]]:
        """Per app over the scope: device-days, mean app score, hangs, crashes, minutes."""
        t = DeviceAppDay
        stmt = select(
            t.app_name,
            func.count().label("device_days"),
            func.avg(t.score).label("score"),
            func.sum(t.hangs).label("hangs"),
            func.sum(t.crashes).label("crashes"),
            func.sum(t.time_lost_min).label("time_lost_min"),
        ).group_by(t.app_name)
        if app is not None:
            stmt = stmt.where(t.app_name == app)
        return [dict(r._mapping) for r in self.session.execute(self._where(stmt, t, scope))]

    def app_daily(self, scope: Scope, app: str) -> list[dict[str, Any]]:
        """Per day for one app: devices, mean score, band counts, hangs, crashes, minutes."""
        t = DeviceAppDay
        stmt = (
            select(
                t.day,
                func.count(t.score).label("n"),
                func.sum(t.score).label("score_sum"),
                func.sum(case((t.score >= GOOD_AT, 1), else_=0)).label("good"),
                func.sum(case((t.score < FRUSTRATING_BELOW, 1), else_=0)).label("frustrating"),
                func.sum(t.hangs).label("hangs"),
                func.sum(t.crashes).label("crashes"),
                func.sum(t.time_lost_min).label("time_lost_min"),
            )
            .where(t.app_name == app)
            .group_by(t.day)
            .order_by(t.day)
        )
        return [dict(r._mapping) for r in self.session.execute(self._where(stmt, t, scope))]

    def app_versions(
        self, tenant_id: uuid.UUID | None, app: str, since: datetime
    ) -> list[dict[str, Any]]:
        """Hangs and crashes of one app per version since ``since`` (recent raw events)."""
        version = func.coalesce(Event.data["app_version"].as_string(), "unknown").label("version")
        stmt = (
            select(
                version,
                func.sum(case((Event.type == "app_hang", 1), else_=0)).label("hangs"),
                func.sum(case((Event.type == "app_crash", 1), else_=0)).label("crashes"),
                func.count(func.distinct(Event.device_id)).label("devices"),
            )
            .where(
                Event.type.in_(("app_hang", "app_crash")),
                Event.ts >= since,
                Event.data["app_name"].as_string() == app,
            )
            .group_by(version)
        )
        if tenant_id is not None:
            stmt = stmt.where(Event.tenant_id == tenant_id)
        return [dict(r._mapping) for r in self.session.execute(stmt)]

    def app_devices_count(self, scope: Scope, app: str) -> int:
        """Distinct devices that used the app in the scope."""
        t = DeviceAppDay
        stmt = self._where(
            select(func.count(func.distinct(t.device_id))).where(t.app_name == app), t, scope
        )
        return int(self.session.scalar(stmt) or 0)

    # -- device tables ------------------------------------------------------------------

    def devices_page(
        self,
        scope: Scope,
        *,
        sort: str,
        descending: bool,
        limit: int | None,
        offset: int,
        app: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Devices of the scope with their mean score and minutes lost over the period.

        Sorted in SQL by one of :data:`DEVICE_SORTS` (ties by hostname), one page of it,
        and the total number of devices. ``app``: only devices that used that app.
        """
        t = DeviceDayScore
        per_device = self._where(
            select(
                t.device_id.label("device_id"),
                func.avg(t.score).label("score"),
                func.sum(t.time_lost_min).label("time_lost_min"),
                func.count().label("days"),
            ),
            t,
            scope,
        ).group_by(t.device_id)
        if app is not None:
            users = self._where(
                select(DeviceAppDay.device_id).where(DeviceAppDay.app_name == app),
                DeviceAppDay,
                scope,
            )
            per_device = per_device.where(t.device_id.in_(users))
        sub = per_device.subquery()
        total = int(self.session.scalar(select(func.count()).select_from(sub)) or 0)
        columns = {
            "hostname": Device.hostname,
            "persona": Device.persona,
            "score": sub.c.score,
            "time_lost_min": sub.c.time_lost_min,
            "days": sub.c.days,
            "last_seen_at": Device.last_seen_at,
        }
        key = columns.get(sort, sub.c.score)
        order = key.desc() if descending else key.asc()
        stmt = (
            select(
                Device.id,
                Device.hostname,
                Device.persona,
                Device.os,
                Device.tags,
                Device.last_seen_at,
                sub.c.score,
                sub.c.time_lost_min,
                sub.c.days,
            )
            .join(sub, sub.c.device_id == Device.id)
            .order_by(order.nulls_last(), Device.hostname, Device.id)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = [dict(r._mapping) for r in self.session.execute(stmt)]
        return rows, total

    def _per_device(self, scope: Scope, app: str | None) -> Any:
        t = DeviceDayScore
        per_device = self._where(
            select(
                t.device_id.label("device_id"),
                func.avg(t.score).label("score"),
                func.sum(t.time_lost_min).label("time_lost_min"),
                func.count().label("days"),
            ),
            t,
            scope,
        ).group_by(t.device_id)
        if app is not None:
            users = self._where(
                select(DeviceAppDay.device_id).where(DeviceAppDay.app_name == app),
                DeviceAppDay,
                scope,
            )
            per_device = per_device.where(t.device_id.in_(users))
        return per_device

    def device_order(
        self, scope: Scope, *, sort: str, descending: bool, app: str | None = None
    ) -> list[uuid.UUID]:
        """Ids of the scope's scored devices in table order (what a cache keeps: 16 bytes a
        device, so that paging and re-sorting 100,000 devices does not aggregate again)."""
        sub = self._per_device(scope, app).subquery()
        columns = {
            "hostname": Device.hostname,
            "persona": Device.persona,
            "score": sub.c.score,
            "time_lost_min": sub.c.time_lost_min,
            "days": sub.c.days,
            "last_seen_at": Device.last_seen_at,
        }
        key = columns.get(sort, sub.c.score)
        order = key.desc() if descending else key.asc()
        stmt = (
            select(Device.id)
            .join(sub, sub.c.device_id == Device.id)
            .order_by(order.nulls_last(), Device.hostname, Device.id)
        )
        return list(self.session.scalars(stmt))

    def device_rows(self, scope: Scope, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        """The table rows of these devices (one page), in the order of ``ids``."""
        if not ids:
            return []
        t = DeviceDayScore
        sub = (
            self._where(
                select(
                    t.device_id.label("device_id"),
                    func.avg(t.score).label("score"),
                    func.sum(t.time_lost_min).label("time_lost_min"),
                    func.count().label("days"),
                ),
                t,
                scope,
            )
            .where(t.device_id.in_(list(ids)))
            .group_by(t.device_id)
            .subquery()
        )
        stmt = select(
            Device.id,
            Device.hostname,
            Device.persona,
            Device.os,
            Device.tags,
            Device.last_seen_at,
            sub.c.score,
            sub.c.time_lost_min,
            sub.c.days,
        ).join(sub, sub.c.device_id == Device.id)
        found = {r.id: dict(r._mapping) for r in self.session.execute(stmt)}
        return [found[i] for i in ids if i in found]

    def device(self, device_id: uuid.UUID) -> Device | None:
        """A device by id (the caller checks its tenant)."""
        return self.session.get(Device, device_id)

    def device_scores(self, device_id: uuid.UUID, start: date, end: date) -> list[Any]:
        """One device's daily rows (score, sub-scores, minutes lost) between two days."""
        t = DeviceDayScore
        stmt = (
            select(
                t.day,
                t.score,
                t.startup,
                t.responsiveness,
                t.stability,
                t.sentiment,
                t.time_lost_min,
            )
            .where(t.device_id == device_id, t.day >= start, t.day <= end)
            .order_by(t.day)
        )
        return list(self.session.execute(stmt))

    def timeline(
        self, device_id: uuid.UUID, since: datetime, limit: int
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        """One device's timeline events since ``since``, newest first (at most ``limit``)."""
        stmt = (
            select(Event.type, Event.ts, Event.data)
            .where(
                Event.device_id == device_id,
                Event.ts >= since,
                Event.type.in_(TIMELINE_TYPES),
            )
            .order_by(Event.ts.desc(), Event.id.desc())
            .limit(limit)
        )
        return [(r[0], r[1], r[2]) for r in self.session.execute(stmt)]

    # -- alerts -------------------------------------------------------------------------

    def alert_counts(self, tenant_id: uuid.UUID | None) -> dict[tuple[str, str], int]:
        """Alerts per (status, severity)."""
        stmt = select(Alert.status, Alert.severity, func.count()).group_by(
            Alert.status, Alert.severity
        )
        if tenant_id is not None:
            stmt = stmt.where(Alert.tenant_id == tenant_id)
        return {(r[0], r[1]): int(r[2]) for r in self.session.execute(stmt)}

    def alerts(
        self, tenant_id: uuid.UUID | None, statuses: Sequence[str], limit: int = 500
    ) -> list[Alert]:
        """Alerts with one of ``statuses``, newest detection first."""
        stmt = select(Alert).where(Alert.status.in_(statuses))
        if tenant_id is not None:
            stmt = stmt.where(Alert.tenant_id == tenant_id)
        return list(
            self.session.scalars(stmt.order_by(Alert.detected_at.desc(), Alert.id).limit(limit))
        )

    def alert(self, alert_id: uuid.UUID) -> Alert | None:
        """One alert by id (the caller checks its tenant)."""
        return self.session.get(Alert, alert_id)

    def device_alerts(self, device: Device, limit: int = 50) -> list[Alert]:
        """Alerts of the device's tenant that name this device (scope or affected list)."""
        key = str(device.id)
        stmt = (
            select(Alert)
            .where(Alert.tenant_id == device.tenant_id)
            .order_by(Alert.detected_at.desc())
            .limit(500)
        )
        found = [
            a
            for a in self.session.scalars(stmt)
            if (a.scope == "device" and a.scope_key == key) or key in (a.affected_device_ids or [])
        ]
        return found[:limit]

    # -- surveys ------------------------------------------------------------------------

    def campaigns(self, tenant_id: uuid.UUID | None) -> list[SurveyCampaign]:
        """The visible survey campaigns, newest first."""
        stmt = select(SurveyCampaign).order_by(SurveyCampaign.created_at.desc())
        if tenant_id is not None:
            stmt = stmt.where(SurveyCampaign.tenant_id == tenant_id)
        return list(self.session.scalars(stmt))


def _on(scope: Scope, day: date) -> Scope:
    return Scope(scope.tenant_id, day, day, scope.persona, scope.group, scope.site)
