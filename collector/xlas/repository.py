"""SQL for XLAs: definitions and versions, evaluations, and the reads evaluation needs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from collector.alerts.models import Alert
from collector.db import chunks
from collector.devices.models import Device
from collector.scores.models import DeviceDayScore
from collector.tenants.models import Tenant
from collector.tickets.models import Ticket
from collector.xlas.models import XlaDefinition, XlaDefinitionVersion, XlaEvaluation
from scoring.xla import GOOD_METRIC_SCORE

__all__ = ["AlertRow", "DeviceRow", "Totals", "XlaRepository"]

Totals = tuple[uuid.UUID, float, float, int]
"""``(device, Σ value·weight, Σ weight, days with a value)`` over a period."""
DeviceRow = tuple[uuid.UUID, str | None, dict[str, str], datetime, datetime | None]
"""``(device, persona now, tags, enrolled_at, last_seen_at)``."""
AlertRow = tuple[uuid.UUID, datetime, datetime, datetime | None, int, list[str]]
"""``(alert, onset, detected_at, resolved_at, affected count, affected device ids)``."""


class XlaRepository:
    """Reads and writes XLA rows; reads rollups, devices, answers, tickets and alerts."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._devices: dict[uuid.UUID, list[DeviceRow]] = {}

    # --- definitions ---------------------------------------------------------------------

    def get(self, xla_id: uuid.UUID, tenant_id: uuid.UUID | None) -> XlaDefinition | None:
        """The definition ``xla_id``, if it is in ``tenant_id`` (any tenant when None)."""
        query = select(XlaDefinition).where(XlaDefinition.id == xla_id)
        if tenant_id is not None:
            query = query.where(XlaDefinition.tenant_id == tenant_id)
        return self.session.scalars(query).first()

    def by_name(self, tenant_id: uuid.UUID, name: str) -> XlaDefinition | None:
        """The tenant's definition called ``name``."""
        return self.session.scalars(
            select(XlaDefinition).where(
                XlaDefinition.tenant_id == tenant_id, XlaDefinition.name == name
            )
        ).first()

    def for_tenant(self, tenant_id: uuid.UUID | None) -> list[XlaDefinition]:
        """Definitions of ``tenant_id`` (None = all tenants), by tenant then name."""
        query = select(XlaDefinition)
        if tenant_id is not None:
            query = query.where(XlaDefinition.tenant_id == tenant_id)
        return list(
            self.session.scalars(query.order_by(XlaDefinition.tenant_id, XlaDefinition.name))
        )

    def add(self, definition: XlaDefinition) -> None:
        """Stage a new definition."""
        self.session.add(definition)
        self.session.flush()

    def add_version(self, version: XlaDefinitionVersion) -> None:
        """Stage a new version of a definition."""
        self.session.add(version)
        self.session.flush()

    def version(self, definition_id: uuid.UUID, version: int) -> XlaDefinitionVersion | None:
        """One version of a definition."""
        return self.session.get(XlaDefinitionVersion, (definition_id, version))

    # --- evaluations ---------------------------------------------------------------------

    def evaluation(self, definition_id: uuid.UUID, period: str) -> XlaEvaluation | None:
        """The stored evaluation of one definition for one period."""
        return self.session.scalars(
            select(XlaEvaluation).where(
                XlaEvaluation.definition_id == definition_id, XlaEvaluation.period == period
            )
        ).first()

    def add_evaluation(self, evaluation: XlaEvaluation) -> None:
        """Stage a new evaluation."""
        self.session.add(evaluation)
        self.session.flush()

    def evaluations(
        self, definition_id: uuid.UUID, *, before: date | None = None, limit: int = 24
    ) -> list[XlaEvaluation]:
        """A definition's evaluations, newest period first (those starting before
        ``before`` only, when given)."""
        query = select(XlaEvaluation).where(XlaEvaluation.definition_id == definition_id)
        if before is not None:
            query = query.where(XlaEvaluation.period_start < before)
        return list(
            self.session.scalars(query.order_by(XlaEvaluation.period_start.desc()).limit(limit))
        )

    # --- what evaluation reads -----------------------------------------------------------

    def _value(self, indicator: str, metric: str | None) -> tuple[Any, Any]:
        """The SQL expressions of a device-day's value and weight for an indicator."""
        d = DeviceDayScore
        if indicator == "sentiment":
            answers = d.measures["survey_answers"].as_float()
            return d.measures["survey_mean_100"].as_float() * answers, answers
        if indicator == "metric_good_share":
            score = d.metrics[metric or ""].as_float()
            value: Any = case(
                (score >= GOOD_METRIC_SCORE, 100.0), (score < GOOD_METRIC_SCORE, 0.0), else_=None
            )
        else:
            value = {
                "experience_score": d.score,
                "startup": d.startup,
                "responsiveness": d.responsiveness,
                "stability": d.stability,
                "time_lost_min": d.time_lost_min,
            }[indicator]
        return value, case((value.is_(None), None), else_=1.0)

    def _scoped(
        self,
        query: Any,
        tenant_id: uuid.UUID,
        start: date,
        end: date,
        persona: str | None,
        group: str | None,
    ) -> Any:
        """``query`` limited to the tenant's rollups of ``start … end`` in the scope."""
        d = DeviceDayScore
        query = query.where(d.tenant_id == tenant_id, d.day >= start, d.day <= end)
        if persona is not None:
            query = query.where(d.persona == persona)
        if group is not None:
            query = query.join(Device, Device.id == d.device_id).where(
                Device.tags["group"].as_string() == group
            )
        return query

    def _totals(
        self,
        key: Any,
        tenant_id: uuid.UUID,
        start: date,
        end: date,
        indicator: str,
        metric: str | None,
        persona: str | None,
        group: str | None,
        excluded: Sequence[date],
    ) -> list[tuple[Any, float, float, int]]:
        """``(key, Σ value·weight, Σ weight, days with a value)`` per ``key`` over the scope,
        the ``excluded`` days left out of the sums (but not of the keys)."""
        value, weight = self._value(indicator, metric)
        d = DeviceDayScore
        if excluded:
            kept = d.day.not_in(list(excluded))
            value = case((kept, value), else_=None)
            weight = case((kept, weight), else_=None)
        query = self._scoped(
            select(key, func.sum(value), func.sum(weight), func.count(value)),
            tenant_id,
            start,
            end,
            persona,
            group,
        ).group_by(key)
        return [
            (r[0], float(r[1] or 0.0), float(r[2] or 0.0), int(r[3]))
            for r in self.session.execute(query.order_by(key))
        ]

    def device_totals(
        self,
        tenant_id: uuid.UUID,
        start: date,
        end: date,
        indicator: str,
        metric: str | None,
        persona: str | None,
        group: str | None,
        excluded: Sequence[date],
    ) -> list[Totals]:
        """Per device with a rollup in the scope: the sums behind its period value.

        Every device with a rollup on ``start … end`` is listed (so the caller knows it was
        seen); its sums leave out the ``excluded`` days. ``persona`` is the persona of each
        day's rollup, ``group`` the device's ``group`` tag. Summed in the database in one
        pass, so a large fleet's device-days never leave it as rows.
        """
        args = (tenant_id, start, end, indicator, metric, persona, group, excluded)
        return self._totals(DeviceDayScore.device_id, *args)

    def day_totals(
        self,
        tenant_id: uuid.UUID,
        start: date,
        end: date,
        indicator: str,
        metric: str | None,
        persona: str | None,
        group: str | None,
        excluded: Sequence[date],
    ) -> list[tuple[date, float, float]]:
        """Per day but the ``excluded`` ones: ``(day, Σ value·weight, Σ weight)`` over the
        scope (the daily chart)."""
        args = (tenant_id, start, end, indicator, metric, persona, group, excluded)
        skip = set(excluded)
        return [
            (day, total, weight)
            for day, total, weight, _ in self._totals(DeviceDayScore.day, *args)
            if day not in skip
        ]

    def time_lost_rows(
        self, device_ids: Sequence[uuid.UUID], start: date, end: date
    ) -> list[tuple[uuid.UUID, date, float]]:
        """``(device, day, time_lost_min)`` of some devices over ``start … end``."""
        out: list[tuple[uuid.UUID, date, float]] = []
        for chunk in chunks(device_ids):
            rows = self.session.execute(
                select(
                    DeviceDayScore.device_id, DeviceDayScore.day, DeviceDayScore.time_lost_min
                ).where(
                    DeviceDayScore.device_id.in_(chunk),
                    DeviceDayScore.day >= start,
                    DeviceDayScore.day <= end,
                )
            )
            out.extend((r[0], r[1], float(r[2])) for r in rows)
        return out

    def devices(self, tenant_id: uuid.UUID) -> list[DeviceRow]:
        """Every device of the tenant (read once per repository: a job evaluating many
        XLAs of a tenant shares one list)."""
        cached = self._devices.get(tenant_id)
        if cached is not None:
            return cached
        rows = self.session.execute(
            select(
                Device.id, Device.persona, Device.tags, Device.enrolled_at, Device.last_seen_at
            ).where(Device.tenant_id == tenant_id)
        )
        out = [(r[0], r[1], dict(r[2] or {}), r[3], r[4]) for r in rows]
        self._devices[tenant_id] = out
        return out

    def tickets(
        self, tenant_id: uuid.UUID, start: datetime, end: datetime
    ) -> list[tuple[uuid.UUID | None, datetime, dict[str, Any] | None]]:
        """``(device, opened_at, extra)`` of the tenant's tickets opened in ``[start, end)``."""
        rows = self.session.execute(
            select(Ticket.device_id, Ticket.opened_at, Ticket.extra).where(
                Ticket.tenant_id == tenant_id, Ticket.opened_at >= start, Ticket.opened_at < end
            )
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def alerts_detected(
        self, tenant_id: uuid.UUID, start: datetime, end: datetime
    ) -> list[AlertRow]:
        """The tenant's alerts detected in ``[start, end)``."""
        rows = self.session.execute(
            select(
                Alert.id,
                Alert.onset,
                Alert.detected_at,
                Alert.resolved_at,
                Alert.affected_count,
                Alert.affected_device_ids,
            ).where(
                Alert.tenant_id == tenant_id, Alert.detected_at >= start, Alert.detected_at < end
            )
        )
        return [(r[0], r[1], r[2], r[3], int(r[4]), list(r[5] or [])) for r in rows]

    def first_tickets(self, alert_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, datetime]:
        """The first ticket's ``opened_at`` per alert (alerts without tickets are absent)."""
        out: dict[uuid.UUID, datetime] = {}
        for chunk in chunks(alert_ids):
            rows = self.session.execute(
                select(Ticket.alert_id, func.min(Ticket.opened_at))
                .where(Ticket.alert_id.in_(chunk))
                .group_by(Ticket.alert_id)
            )
            out.update({r[0]: r[1] for r in rows if r[0] is not None})
        return out

    # --- the MSP overview ------------------------------------------------------------------

    def tenants(self) -> list[tuple[uuid.UUID, str]]:
        """Every tenant, by name."""
        rows = self.session.execute(select(Tenant.id, Tenant.name).order_by(Tenant.name))
        return [(r[0], r[1]) for r in rows]

    def tenant_name(self, tenant_id: uuid.UUID) -> str | None:
        """A tenant's name (None if there is no such tenant)."""
        return self.session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))

    def device_counts(self) -> dict[uuid.UUID, int]:
        """Devices per tenant."""
        rows = self.session.execute(
            select(Device.tenant_id, func.count()).group_by(Device.tenant_id)
        )
        return {r[0]: int(r[1]) for r in rows}

    def open_alert_counts(self) -> dict[uuid.UUID, int]:
        """Open alerts per tenant."""
        rows = self.session.execute(
            select(Alert.tenant_id, func.count())
            .where(Alert.status == "open")
            .group_by(Alert.tenant_id)
        )
        return {r[0]: int(r[1]) for r in rows}
