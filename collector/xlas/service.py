"""XLA use cases: save definitions (JSON, YAML, TOML), evaluate periods, read results.

Evaluation reads the daily rollups (``device_day_scores``), the survey answers of the
period itself (never carried over from earlier periods), the period's tickets and alerts,
hands them to :mod:`scoring.xla` as arrays and stores the result. A period's evaluation
becomes ``final`` once the period and :data:`GRACE_DAYS` have passed; the jobs never touch
a final evaluation again, so a report regenerated later shows the same figures.
"""

from __future__ import annotations

import json
import math
import tomllib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import yaml
from pydantic import ValidationError
from sqlalchemy.orm import Session

from collector.errors import NotFound, UnprocessableEntity, loc_to_field
from collector.identity.roles import Identity
from collector.settings import Settings
from collector.tenants.service import target_tenant
from collector.xlas.models import XlaDefinition, XlaDefinitionVersion, XlaEvaluation
from collector.xlas.periods import Period, parse_period, period_containing
from collector.xlas.repository import XlaRepository
from collector.xlas.schemas import (
    XLA_FILE,
    XLA_REQUEST,
    EvaluationList,
    EvaluationOut,
    MspOverview,
    MspTenantRow,
    XlaIn,
    XlaList,
    XlaOut,
    XlaSaved,
)
from scoring.xla import (
    INSUFFICIENT,
    MET,
    MISSED,
    SlaTarget,
    XlaTarget,
    evaluate,
    lead_time_figures,
    period_values_from_totals,
    sla_figures,
    watermelon,
)

__all__ = [
    "GRACE_DAYS",
    "MEDIA_TYPES",
    "evaluate_definition",
    "evaluation_out",
    "get_xla",
    "list_evaluations",
    "list_xlas",
    "msp_overview",
    "parse_definitions",
    "run_xla",
    "save_definitions",
    "tenant_period_evaluations",
]

GRACE_DAYS: Final = 2
"""Days after a period's end during which late data may still change its evaluation."""
BASELINE_DAYS: Final = 14
"""Days before an alert's onset that give the affected devices' usual time lost."""
MEDIA_TYPES: Final = {
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "application/toml": "toml",
    "text/toml": "toml",
}
"""Content types a definitions body may have, and the format each means."""


# --- definitions ----------------------------------------------------------------------------


def _validation_error(exc: ValidationError, prefix: str = "") -> UnprocessableEntity:
    """A 422 naming the exact field of the first error (model checks name theirs first)."""
    first = exc.errors()[0]
    loc = loc_to_field(first["loc"]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if first["type"] == "value_error" and sep and head in {"metric", "target.value"}:
        loc, message = (f"{loc}.{head}" if loc else head), rest
    field = prefix + loc if loc else (prefix.rstrip(".") or None)
    return UnprocessableEntity(f"{field}: {message}" if field else message, field=field)


def parse_definitions(body: bytes, fmt: str = "json") -> list[XlaIn]:
    """XLA definitions from a request body or a file: one object, a list, or ``xlas: [...]``.

    ``fmt`` is ``json``, ``yaml`` or ``toml``. Every error is a 422 naming the field
    (``xlas.2.target.value``) or the syntax problem.
    """
    try:
        if fmt == "json":
            data: Any = json.loads(body)
        elif fmt == "yaml":
            data = yaml.safe_load(body.decode("utf-8"))
        elif fmt == "toml":
            data = tomllib.loads(body.decode("utf-8"))
        else:
            raise UnprocessableEntity(f"unknown definitions format {fmt!r}")
    except UnicodeDecodeError as exc:
        raise UnprocessableEntity("definitions must be UTF-8 text", code="malformed") from exc
    except (json.JSONDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise UnprocessableEntity(
            f"malformed {fmt.upper()}: {exc}".splitlines()[0], code=f"malformed_{fmt}"
        ) from exc
    if isinstance(data, Mapping) and "xlas" in data:
        try:
            return XLA_FILE.validate_python(data).xlas
        except ValidationError as exc:
            raise _validation_error(exc) from exc
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 500:
        raise UnprocessableEntity("send 1 to 500 XLA definitions", field="xlas")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(XLA_REQUEST.validate_python(item))
        except ValidationError as exc:
            raise _validation_error(exc, f"xlas[{i}]." if isinstance(data, list) else "") from exc
    return out


def _out(
    definition: XlaDefinition, spec: dict[str, Any], latest: XlaEvaluation | None = None
) -> XlaOut:
    return XlaOut(
        id=definition.id,
        tenant_id=definition.tenant_id,
        name=definition.name,
        version=definition.version,
        definition=spec,
        created_at=definition.created_at,
        updated_at=definition.updated_at,
        latest=evaluation_out(latest, definition.name) if latest is not None else None,
    )


def _current_spec(repo: XlaRepository, definition: XlaDefinition) -> dict[str, Any]:
    version = repo.version(definition.id, definition.version)
    if version is None:  # pragma: no cover - written together with the definition
        raise NotFound(f"XLA {definition.id} has no version {definition.version}")
    return version.spec


def save_definitions(session: Session, identity: Identity, items: Iterable[XlaIn]) -> XlaSaved:
    """Create each XLA, or add a version to the tenant's XLA of that name; all or nothing.

    A definition equal to the current version is left as it is (``unchanged``), so
    re-applying the same file is harmless. Commits.
    """
    repo = XlaRepository(session)
    now = datetime.now(UTC)
    saved: list[XlaOut] = []
    created = versioned = unchanged = 0
    seen: set[tuple[uuid.UUID, str]] = set()
    for item in items:
        tenant_id = target_tenant(session, identity, item.tenant_id, "define XLAs")
        if (tenant_id, item.name) in seen:
            raise UnprocessableEntity(
                f"XLA {item.name!r} appears twice in one request", field="name"
            )
        seen.add((tenant_id, item.name))
        spec = item.spec()
        definition = repo.by_name(tenant_id, item.name)
        if definition is None:
            definition = XlaDefinition(
                tenant_id=tenant_id, name=item.name, version=1, created_at=now, updated_at=now
            )
            repo.add(definition)
            created += 1
        elif _current_spec(repo, definition) == spec:
            unchanged += 1
            saved.append(_out(definition, spec))
            continue
        else:
            definition.version += 1
            definition.updated_at = now
            versioned += 1
        repo.add_version(
            XlaDefinitionVersion(
                definition_id=definition.id,
                version=definition.version,
                spec=spec,
                created_by=f"{identity.kind}:{identity.subject_id}",
                created_at=now,
            )
        )
        saved.append(_out(definition, spec))
    session.commit()
    return XlaSaved(items=saved, created=created, versioned=versioned, unchanged=unchanged)


def _visible(session: Session, xla_id: uuid.UUID, tenant_id: uuid.UUID | None) -> XlaDefinition:
    definition = XlaRepository(session).get(xla_id, tenant_id)
    if definition is None:
        raise NotFound(f"no XLA {xla_id}", code="xla_not_found")
    return definition


def list_xlas(session: Session, tenant_id: uuid.UUID | None) -> XlaList:
    """The XLAs of ``tenant_id`` (None = every tenant) with their latest evaluation."""
    repo = XlaRepository(session)
    items = []
    for definition in repo.for_tenant(tenant_id):
        latest = repo.evaluations(definition.id, limit=1)
        items.append(
            _out(definition, _current_spec(repo, definition), latest[0] if latest else None)
        )
    return XlaList(items=items)


def get_xla(session: Session, xla_id: uuid.UUID, tenant_id: uuid.UUID | None) -> XlaOut:
    """One XLA (404 when it is not in the caller's tenant)."""
    repo = XlaRepository(session)
    definition = _visible(session, xla_id, tenant_id)
    latest = repo.evaluations(definition.id, limit=1)
    return _out(definition, _current_spec(repo, definition), latest[0] if latest else None)


def evaluation_out(evaluation: XlaEvaluation, name: str) -> EvaluationOut:
    """The API shape of a stored evaluation."""
    return EvaluationOut(
        xla_id=evaluation.definition_id,
        name=name,
        version=evaluation.version,
        period=evaluation.period,
        period_start=evaluation.period_start,
        period_end=evaluation.period_end,
        status=evaluation.status,
        value=evaluation.value,
        margin=evaluation.margin,
        reason=evaluation.reason,
        final=evaluation.final,
        computed_at=evaluation.computed_at,
        figures=evaluation.figures,
    )


def list_evaluations(
    session: Session, xla_id: uuid.UUID, tenant_id: uuid.UUID | None, limit: int = 24
) -> EvaluationList:
    """An XLA's stored evaluations, newest period first."""
    definition = _visible(session, xla_id, tenant_id)
    rows = XlaRepository(session).evaluations(definition.id, limit=max(1, min(limit, 120)))
    return EvaluationList(items=[evaluation_out(e, definition.name) for e in rows])


# --- evaluation -----------------------------------------------------------------------------


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _excluded_days(spec: XlaIn, period: Period) -> set[date]:
    days: set[date] = set()
    for window in spec.exclusions.maintenance_windows:
        day = window.start.astimezone(UTC).date()
        last = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
        while day <= last:
            if period.start <= day <= period.end:
                days.add(day)
            day += timedelta(days=1)
    return days


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _flag(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "y"}:
        return 1.0
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "0", "n"}:
        return 0.0
    return math.nan


def _histogram(values: np.ndarray[Any, np.dtype[np.float64]], upper: float) -> list[int]:
    counted = values[~np.isnan(values)]
    edges = np.linspace(0.0, upper, 11)
    hist, _ = np.histogram(np.clip(counted, 0.0, upper), bins=edges)
    return [int(h) for h in hist]


def _compute(
    repo: XlaRepository,
    tenant_id: uuid.UUID,
    spec: XlaIn,
    period: Period,
    as_of: datetime,
    previous: XlaEvaluation | None,
) -> tuple[str, float, float, str, dict[str, Any]]:
    """(status, value, margin, reason, figures) of one XLA over one period."""
    last_day = min(period.end, (as_of - timedelta(microseconds=1)).astimezone(UTC).date())
    excluded = _excluded_days(spec, period)
    scope = (spec.scope.persona, spec.scope.group)
    started = last_day >= period.start
    args = (spec.indicator, spec.metric, *scope, sorted(excluded))
    totals = repo.device_totals(tenant_id, period.start, last_day, *args) if started else []
    seen = {t[0] for t in totals}
    not_seen = 0
    for device_id, persona, tags, enrolled_at, last_seen in repo.devices(tenant_id):
        if device_id in seen:
            continue
        if spec.scope.group is not None and tags.get("group") != spec.scope.group:
            continue
        if spec.scope.persona is not None and persona != spec.scope.persona:
            continue
        if (
            last_seen is not None
            and last_seen >= period.start_ts
            and enrolled_at < min(period.end_ts, as_of)
        ):
            seen.add(device_id)
        else:
            not_seen += 1
    index = {d: i for i, d in enumerate(sorted(seen))}
    n = len(index)
    sums, weights, days = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    for device_id, total, weight, valued in totals:
        i = index[device_id]
        sums[i], weights[i], days[i] = total, weight, valued
    sentiment = spec.indicator == "sentiment"
    values = period_values_from_totals(
        sums, weights, days, 1 if sentiment else spec.exclusions.min_days_seen
    )
    responses = int(weights.sum()) if sentiment else 0
    daily = repo.day_totals(tenant_id, period.start, last_day, *args) if started else []
    source = (
        "survey answers given in the period, from the daily rollups (none carried over)"
        if sentiment
        else "daily device rollups (device_day_scores)"
    )
    target = XlaTarget(
        comparison=spec.target.comparison,
        device_target=spec.target.value,
        share_target_pct=spec.target.share_of_devices_pct,
        min_devices=spec.min_devices,
        min_coverage_pct=spec.min_coverage_pct,
        min_responses=spec.min_responses if spec.indicator == "sentiment" else 0,
    )
    result = evaluate(values, n, target, responses)
    status, reason = result.status, result.reason
    if last_day < period.start:
        status, reason = INSUFFICIENT, "the period has not started yet"
    too_few = int(((days > 0) & np.isnan(values)).sum()) if not sentiment else 0
    scope_ids = set(index)
    sla_spec = spec.sla
    sla_target = (
        SlaTarget(sla_spec.resolve_within_h, sla_spec.resolve_target_pct, sla_spec.fcr_target_pct)
        if sla_spec
        else SlaTarget()
    )
    resolve_h, fcr = [], []
    scoped = spec.scope.persona is not None or spec.scope.group is not None
    for ticket_device, opened_at, extra in repo.tickets(tenant_id, period.start_ts, period.end_ts):
        if scoped and ticket_device not in scope_ids:
            continue
        extra = extra or {}
        resolved = _parse_ts(extra.get("resolved_at"))
        hours = (resolved - opened_at).total_seconds() / 3600 if resolved else math.nan
        resolve_h.append(hours if hours >= 0 else math.nan)
        fcr.append(_flag(extra.get("first_contact_resolution")))
    sla = sla_figures(resolve_h, fcr, sla_target)
    proactive = _proactive(repo, tenant_id, period, last_day, scope_ids if scoped else None)
    upper = 100.0 if spec.indicator != "time_lost_min" else max(60.0, spec.target.value * 2)
    figures: dict[str, Any] = {
        "indicator": spec.indicator,
        "metric": spec.metric,
        "aggregation": "mean" if spec.target.share_of_devices_pct is None else "device_share",
        "target": spec.target.model_dump(mode="json"),
        "value": _num(result.value),
        "margin": _num(result.margin),
        "mean_value": _num(result.mean_value),
        "computed_from": source,
        "as_of": as_of.isoformat(),
        "coverage": {
            "devices_in_scope": n,
            "devices_counted": result.devices_counted,
            "devices_not_seen": not_seen,
            "devices_too_few_days": too_few,
            "coverage_pct": _num(result.coverage_pct),
            "responses": responses,
            "days_in_period": period.days,
            "days_evaluated": max(
                0, (last_day - period.start).days + 1 - sum(d <= last_day for d in excluded)
            ),
            "days_excluded": sorted(d.isoformat() for d in excluded),
        },
        "distribution": {"upper": upper, "counts": _histogram(values, upper)},
        "series": [
            {"day": d.isoformat(), "value": _num(total / weight), "n": int(weight)}
            for d, total, weight in daily
            if weight > 0
        ],
        "trend": {
            "previous_period": previous.period if previous else None,
            "previous_status": previous.status if previous else None,
            "previous_value": previous.value if previous else None,
            "delta": (
                _num(result.value - previous.value)
                if previous is not None and previous.value is not None
                else None
            ),
        },
        "sla": {
            "target": {
                "resolve_within_h": sla_target.resolve_within_h,
                "resolve_target_pct": sla_target.resolve_target_pct,
                "fcr_target_pct": sla_target.fcr_target_pct,
                "source": "definition" if sla_spec else "default",
            },
            "status": sla.status,
            "tickets": sla.tickets,
            "resolved": sla.resolved,
            "within_target_pct": _num(sla.within_target_pct),
            "median_resolve_h": _num(sla.median_resolve_h),
            "fcr_pct": _num(sla.fcr_pct),
            "fcr_known": sla.fcr_known,
            "reason": sla.reason,
        },
        "watermelon": watermelon(sla.status, status),
        "proactive": proactive,
    }
    return status, result.value, result.margin, reason, figures


def _proactive(
    repo: XlaRepository,
    tenant_id: uuid.UUID,
    period: Period,
    last_day: date,
    scope_ids: set[uuid.UUID] | None,
) -> dict[str, Any]:
    """Alerts detected in the period: before-ticket share, lead time, time lost avoided."""
    alerts = repo.alerts_detected(tenant_id, period.start_ts, period.end_ts)
    if scope_ids is not None:
        alerts = [a for a in alerts if any(uuid.UUID(d) in scope_ids for d in a[5])]
    first = repo.first_tickets([a[0] for a in alerts])
    affected = {uuid.UUID(d) for a in alerts for d in a[5]}
    earliest = min((a[1] for a in alerts), default=period.start_ts)
    lost: dict[tuple[uuid.UUID, date], float] = {}
    if affected:
        start = earliest.astimezone(UTC).date() - timedelta(days=BASELINE_DAYS)
        lost = {(d, day): v for d, day, v in repo.time_lost_rows(sorted(affected), start, last_day)}
    excess = []
    for _id, onset, _detected, resolved, _count, ids in alerts:
        onset_day = onset.astimezone(UTC).date()
        stop = min(last_day, resolved.astimezone(UTC).date() if resolved else last_day)
        base, during = [], []
        for raw in ids:
            d = uuid.UUID(raw)
            for (dev, day), v in lost.items():
                if dev != d:
                    continue
                if onset_day - timedelta(days=BASELINE_DAYS) <= day < onset_day:
                    base.append(v)
                elif onset_day <= day <= stop:
                    during.append(v)
        excess.append(
            float(np.mean(during)) - float(np.mean(base)) if base and during else math.nan
        )
    hours = [a[2].timestamp() / 3600 for a in alerts]
    ticket_h = [first[a[0]].timestamp() / 3600 if a[0] in first else math.nan for a in alerts]
    figures = lead_time_figures(hours, ticket_h, [a[4] for a in alerts], excess)
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in figures.items()}


def evaluate_definition(
    session: Session,
    definition: XlaDefinition,
    period: Period,
    as_of: datetime,
    repo: XlaRepository | None = None,
) -> XlaEvaluation:
    """Evaluate (or re-evaluate) one XLA over one period and store it, unless the stored
    one is final. Uses the definition's current version; flushes, does not commit. A
    ``repo`` shared across calls shares its reads (the tenant's devices)."""
    repo = repo or XlaRepository(session)
    stored = repo.evaluation(definition.id, period.label)
    if stored is not None and stored.final:
        return stored
    version = repo.version(definition.id, definition.version)
    if version is None:  # pragma: no cover - written together with the definition
        raise NotFound(f"XLA {definition.id} has no version {definition.version}")
    spec = XlaIn.model_validate({**version.spec, "name": definition.name})
    previous = repo.evaluation(definition.id, period.previous().label)
    status, value, margin, reason, figures = _compute(
        repo, definition.tenant_id, spec, period, as_of, previous
    )
    final = as_of.astimezone(UTC).date() > period.end + timedelta(days=GRACE_DAYS)
    evaluation = stored or XlaEvaluation(
        definition_id=definition.id, tenant_id=definition.tenant_id, period=period.label
    )
    evaluation.version = definition.version
    evaluation.period_start = period.start
    evaluation.period_end = period.end
    evaluation.status = status
    evaluation.value = _num(value)
    evaluation.margin = _num(margin)
    evaluation.figures = {**figures, "definition": version.spec}
    evaluation.reason = reason
    evaluation.final = final
    evaluation.computed_at = as_of
    if stored is None:
        repo.add_evaluation(evaluation)
    session.flush()
    return evaluation


def run_xla(session: Session, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """The ``xla`` job: evaluate every XLA for its current period and, until final, the
    period before; commits."""
    del settings
    repo = XlaRepository(session)
    counts = {MET: 0, MISSED: 0, INSUFFICIENT: 0}
    evaluated = 0
    for definition in repo.for_tenant(None):
        spec = _current_spec(repo, definition)
        current = period_containing(str(spec.get("period", "month")), as_of.date())
        for period in (current.previous(), current):
            stored = repo.evaluation(definition.id, period.label)
            if stored is not None and stored.final:
                continue
            evaluation = evaluate_definition(session, definition, period, as_of, repo)
            evaluated += 1
            if period is current:
                counts[evaluation.status] = counts.get(evaluation.status, 0) + 1
    session.commit()
    return {"evaluated": evaluated, "current": counts}


def tenant_period_evaluations(
    session: Session, tenant_id: uuid.UUID, label: str, as_of: datetime
) -> tuple[Period, list[tuple[XlaDefinition, XlaEvaluation, list[XlaEvaluation]]]]:
    """Every XLA of the tenant whose period kind matches ``label``, with its evaluation of
    that period (the stored one, or computed and stored now) and up to 11 earlier ones.

    422 for a malformed label or a period that has not started; commits what it computes.
    """
    try:
        period = parse_period(label)
    except ValueError as exc:
        raise UnprocessableEntity(str(exc), field="period") from exc
    if period.start_ts > as_of:
        raise UnprocessableEntity(f"period {label} has not started yet", field="period")
    repo = XlaRepository(session)
    out = []
    for definition in repo.for_tenant(tenant_id):
        if _current_spec(repo, definition).get("period", "month") != period.kind:
            continue
        stored = repo.evaluation(definition.id, period.label)
        evaluation = stored or evaluate_definition(session, definition, period, as_of, repo)
        history = repo.evaluations(definition.id, before=period.start, limit=11)
        out.append((definition, evaluation, history))
    session.commit()
    return period, out


def msp_overview(session: Session, as_of: datetime) -> MspOverview:
    """Every tenant side by side: XLA statuses of the latest closed (final) period, or of
    the running one where none is closed yet, with trend and open alerts (MSP staff only:
    the router checks)."""
    repo = XlaRepository(session)
    devices = repo.device_counts()
    alerts = repo.open_alert_counts()
    by_tenant: dict[uuid.UUID, list[EvaluationOut]] = defaultdict(list)
    for definition in repo.for_tenant(None):
        recent = repo.evaluations(definition.id, limit=3)
        shown = next((e for e in recent if e.final), recent[0] if recent else None)
        if shown is not None:
            by_tenant[definition.tenant_id].append(evaluation_out(shown, definition.name))
    counts = defaultdict(int, {d.tenant_id: 0 for d in repo.for_tenant(None)})
    for definition in repo.for_tenant(None):
        counts[definition.tenant_id] += 1
    rows = []
    for tenant_id, name in repo.tenants():
        evaluations = by_tenant.get(tenant_id, [])
        rows.append(
            MspTenantRow(
                tenant_id=tenant_id,
                tenant_name=name,
                devices=devices.get(tenant_id, 0),
                xlas=counts.get(tenant_id, 0),
                met=sum(e.status == MET for e in evaluations),
                missed=sum(e.status == MISSED for e in evaluations),
                insufficient=sum(e.status == INSUFFICIENT for e in evaluations),
                watermelons=sum(e.figures.get("watermelon") == "watermelon" for e in evaluations),
                open_alerts=alerts.get(tenant_id, 0),
                evaluations=evaluations,
            )
        )
    return MspOverview(generated_at=as_of, tenants=rows)
