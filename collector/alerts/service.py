"""The detection job and the alerts API: open, update, resolve; acknowledge; read.

**The job** (``detect`` in ``collector.jobs``, after scoring): per tenant, read the last
weeks of rollups and the sparse events up to ``as_of``, run the detectors
(:mod:`collector.alerts.detection`) and reconcile their findings with the tenant's active
alerts by fingerprint: a new finding opens an alert stamped ``detected_at = as_of``; a
finding of an active alert updates it (affected devices only grow); an active alert no
detector has confirmed for :data:`RESOLVE_AFTER` resolves itself (``resolved_at = as_of``).
A finding of a problem whose alert resolved less than :data:`REOPEN_WITHIN` ago reopens that
alert (``reopened_at = as_of``; ``detected_at`` and the lead time stay those of its first
detection) instead of opening another: a metric hovering at its limit makes one alert with a
history of its returns, not a new alert each time it crosses. Each opening, growth,
reopening and resolution is queued for the tenant's webhooks in the same
transaction (collector.notifications), and the tenant's tickets are matched to the alerts
again (collector.tickets), which gives every alert its first ticket and lead time.
A run at an earlier ``as_of`` than alerts already stored first removes the alerts detected
after it, undoes the reopenings after it and reopens those resolved after it, so replays are
exact.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from collector.alerts.cache import DetectionCache, EventWindow, TenantInputs
from collector.alerts.detection import (
    Candidate,
    DetectionInputs,
    DetectionSettings,
    DeviceInfo,
    detect,
    severity,
)
from collector.alerts.models import Alert
from collector.alerts.repository import AlertRepository
from collector.db import utcnow
from collector.devices.repository import DeviceRepository
from collector.errors import Forbidden, NotFound, UnprocessableEntity
from collector.identity.roles import Identity, Role
from collector.notifications.service import enqueue_alert_event
from collector.personas.service import default_persona_name, personas_for_tenant
from collector.scores.repository import ScoresRepository
from collector.settings import Settings
from collector.tickets.service import first_ticket_at, match_tickets_to_alerts

__all__ = [
    "LOOKBACK_DAYS",
    "REOPEN_WITHIN",
    "REPLAY_AFTER",
    "RESOLVE_AFTER",
    "STATUSES",
    "alert_out",
    "detect_tenant",
    "get_alert",
    "list_alerts",
    "read_inputs",
    "run_detection",
    "set_status",
]

RESOLVE_AFTER: Final = timedelta(hours=24)
"""An active alert no detector confirmed for this long resolves itself."""
REOPEN_WITHIN: Final = timedelta(hours=72)
"""A problem found again less than this after its alert resolved reopens that alert."""
REPLAY_AFTER: Final = timedelta(hours=1)
"""A detection run for a time further back than this is a replay (it notifies no one)."""

LOOKBACK_DAYS: Final = 28
"""Days of rollups the detectors read (baselines need history)."""

STATUSES: Final = ("open", "acknowledged", "resolved")

_EVENT_TYPES: Final = ("app_crash", "app_hang", "system_crash", "boot")


def _project_probe(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("target", "ok", "total_s") if k in data}


def _windows(s: DetectionSettings) -> dict[str, tuple[tuple[str, ...], timedelta]]:
    """The event windows the detectors read: types and how far back."""
    return {
        "changes": (("software_change",), s.change_lookback),
        "app_events": (_EVENT_TYPES, s.change_lookback),
        "probes": (("probe",), timedelta(days=s.site_baseline_days)),
    }


def read_inputs(
    session: Session,
    tenant_id: uuid.UUID,
    as_of: datetime,
    s: DetectionSettings,
    *,
    cache: DetectionCache | None = None,
    receive_lag_s: float = 120.0,
) -> DetectionInputs:
    """The detectors' inputs: read whole, or carried forward from ``cache`` by reading only
    what is new (collector.alerts.cache); both give the same inputs."""
    repo = AlertRepository(session)
    personas = personas_for_tenant(session, tenant_id)
    names = {p.name for p in personas}
    devices = {
        d.id: DeviceInfo(
            device_id=d.id,
            hostname=d.hostname,
            site=(d.tags or {}).get("site"),
            persona=d.persona if d.persona in names else default_persona_name(),
        )
        for d in repo.devices(tenant_id)
    }
    first_day = (as_of - timedelta(days=LOOKBACK_DAYS)).date()
    presence_from = (as_of - s.window).date()
    received_through = utcnow() - timedelta(seconds=receive_lag_s)
    read_at = utcnow()
    kept = cache.take(tenant_id, as_of) if cache is not None else None
    windows = _windows(s)
    if kept is None:
        kept = TenantInputs(
            as_of=as_of,
            received_through=received_through,
            read_at=read_at,
            windows={
                name: EventWindow(project=_project_probe if name == "probes" else None)
                for name in windows
            },
        )
        for name, (types, length) in windows.items():
            kept.windows[name].add(repo.event_rows(tenant_id, types, as_of - length, as_of))
        rows = repo.rollups(tenant_id, first_day, as_of.date(), computed_after=None)
        n_days = (as_of.date() - presence_from).days + 1
        presence_days = [presence_from + timedelta(days=k) for k in range(n_days)]
    else:
        for name, (types, length) in windows.items():
            window = kept.windows[name]
            window.drop_until(as_of - length)
            window.add(
                repo.event_rows(
                    tenant_id,
                    types,
                    as_of - length,
                    as_of,
                    received_after=kept.received_through,
                    ts_after=kept.as_of,
                )
            )
        rows = repo.rollups(tenant_id, first_day, as_of.date(), computed_after=kept.read_at)
        presence_days = sorted({day for _d, day, *_ in rows if day >= presence_from})
    found = repo.app_presence_on(tenant_id, presence_days)
    kept.drop_days_before(first_day)
    kept.set_days(
        ((d, day, (a, c, m, score, meas)) for d, day, a, c, m, score, meas in rows),
        {k: tuple(sorted(v)) for k, v in found.items()},
    )
    kept.as_of, kept.received_through, kept.read_at = as_of, received_through, read_at
    if cache is not None:
        cache.put(tenant_id, kept)
    day_keys = sorted(
        (k for k in kept.days if k[0] in devices and k[1] <= as_of.date()),
        key=lambda k: (k[0].int, k[1]),
    )
    windows_now = {name: w.ordered() for name, w in kept.windows.items()}
    measures_from = (as_of - timedelta(days=14)).date()
    return DetectionInputs(
        as_of=as_of,
        devices=devices,
        day_rows=[(d, day, *kept.days[(d, day)][:4]) for d, day in day_keys],
        changes=[(d, ts, data) for _pk, d, _k, ts, _e, data in windows_now["changes"]],
        app_events=[(d, k, ts, data) for _pk, d, k, ts, _e, data in windows_now["app_events"]],
        app_presence=[
            (d, day, app)
            for d, day in day_keys
            if day >= presence_from
            for app in kept.presence.get((d, day), ())
        ],
        measures={(d, day): kept.days[(d, day)][4] for d, day in day_keys if day >= measures_from},
        probes=[(d, ts, data) for _pk, d, _k, ts, _e, data in windows_now["probes"]],
        min_score_drop={p.name: p.alert_min_score_drop for p in personas},
    )


def _apply(alert: Alert, c: Candidate, as_of: datetime) -> None:
    """Copy a finding onto an alert (affected devices only grow while it is active)."""
    affected = sorted({*alert.affected_device_ids, *(str(d) for d in c.affected)})
    alert.title = c.title
    alert.onset = min(alert.onset, c.onset) if alert.onset else c.onset
    alert.affected_device_ids = affected
    alert.affected_count = len(affected)
    alert.baseline = c.baseline
    alert.current = c.current
    alert.effect_size = c.effect_size
    alert.evidence = {**c.evidence, "z": round(c.z, 2)}
    alert.suspected_change = c.suspected_change
    alert.severity = severity(len(affected), c.effect_size, c.scope)
    alert.updated_at = as_of


def detect_tenant(
    session: Session,
    tenant_id: uuid.UUID,
    as_of: datetime,
    s: DetectionSettings | None = None,
    *,
    replay: bool = False,
    cache: DetectionCache | None = None,
    receive_lag_s: float = 120.0,
) -> dict[str, int]:
    """Run the detectors for one tenant and reconcile its alerts; commits. With ``replay``
    (``as_of`` in the past) the alert events are recorded but not sent to webhooks.

    ``cache``: inputs carried from the last run (collector.alerts.cache); batches received
    in the last ``receive_lag_s`` seconds are read again next run (late commits)."""
    settings = s or DetectionSettings()
    repo = AlertRepository(session)
    for later in repo.alerts_detected_after(tenant_id, as_of):
        repo.delete(later)
    _undo_reopenings(repo, tenant_id, as_of)
    active = {a.fingerprint: a for a in repo.active_alerts(tenant_id)}
    for again in _reopened(session, tenant_id, as_of):
        active[again.fingerprint] = again
    recent = {
        a.fingerprint: a for a in repo.resolved_between(tenant_id, as_of - REOPEN_WITHIN, as_of)
    }
    found = [
        c
        for c in detect(
            read_inputs(
                session, tenant_id, as_of, settings, cache=cache, receive_lag_s=receive_lag_s
            ),
            settings,
        )
        if c.scope == "device" or len(c.affected) >= settings.min_devices
    ]
    counts = {"opened": 0, "updated": 0, "reopened": 0, "resolved": 0}
    for c in found:
        existing = active.pop(c.fingerprint, None)
        back = recent.get(c.fingerprint) if existing is None else None
        if back is not None:
            _reopen(back, as_of)
            _apply(back, c, as_of)
            enqueue_alert_event(session, back, "reopened", replay=replay)
            counts["reopened"] += 1
        elif existing is None:
            alert = Alert(
                tenant_id=tenant_id,
                fingerprint=c.fingerprint,
                kind=c.kind,
                scope=c.scope,
                scope_key=c.scope_key,
                metric=c.metric,
                status="open",
                onset=c.onset,
                detected_at=as_of,
                affected_device_ids=[],
            )
            _apply(alert, c, as_of)
            repo.add(alert)
            enqueue_alert_event(session, alert, "opened", replay=replay)
            counts["opened"] += 1
        else:
            grew = len(set(existing.affected_device_ids) | {str(d) for d in c.affected})
            grew_from = existing.affected_count
            _apply(existing, c, as_of)
            if grew > grew_from:  # tell receivers when it grows, not on every hourly check
                enqueue_alert_event(session, existing, "updated", replay=replay)
            counts["updated"] += 1
    for stale in active.values():
        if stale.updated_at <= as_of - RESOLVE_AFTER:
            stale.status = "resolved"
            stale.resolved_at = as_of
            enqueue_alert_event(session, stale, "resolved", replay=replay)
            counts["resolved"] += 1
    counts["tickets_matched"] = match_tickets_to_alerts(session, tenant_id, now=as_of)
    session.commit()
    return counts


def _active_status(alert: Alert) -> str:
    """The status of an alert made active again: acknowledged stays acknowledged."""
    return "acknowledged" if alert.acknowledged_at else "open"


def _reopen(alert: Alert, as_of: datetime) -> None:
    """A resolved alert's problem is back: active again, with the return in its history."""
    assert alert.resolved_at is not None
    entry = {"resolved_at": alert.resolved_at.isoformat(), "reopened_at": as_of.isoformat()}
    alert.reopenings = [*alert.reopenings, entry]  # a new list: the JSON column sees the change
    alert.reopened_at = as_of
    alert.resolved_at = None
    alert.status = _active_status(alert)


def _undo_reopenings(repo: AlertRepository, tenant_id: uuid.UUID, as_of: datetime) -> None:
    """A replay to ``as_of``: forget the reopenings after it. The first forgotten one says
    how the alert stood at ``as_of``: resolved at its ``resolved_at`` if that is not later,
    else still active."""
    for alert in repo.reopened_after(tenant_id, as_of):
        kept = [r for r in alert.reopenings if datetime.fromisoformat(r["reopened_at"]) <= as_of]
        resolved_at = datetime.fromisoformat(alert.reopenings[len(kept)]["resolved_at"])
        alert.reopenings = kept
        alert.reopened_at = datetime.fromisoformat(kept[-1]["reopened_at"]) if kept else None
        if resolved_at <= as_of:
            alert.status = "resolved"
            alert.resolved_at = resolved_at
        else:
            alert.status = _active_status(alert)
            alert.resolved_at = None


def _reopened(session: Session, tenant_id: uuid.UUID, as_of: datetime) -> list[Alert]:
    """Alerts resolved after ``as_of`` (a replay to an earlier time): active again."""
    out = AlertRepository(session).resolved_after(tenant_id, as_of)
    for alert in out:
        alert.status = _active_status(alert)
        alert.resolved_at = None
    return out


def run_detection(
    session: Session,
    settings: Settings,
    as_of: datetime,
    *,
    cache: DetectionCache | None = None,
) -> dict[str, Any]:
    """The ``detect`` job: every tenant with devices (see the module doc).

    A run more than :data:`REPLAY_AFTER` in the past is a replay: its alert events are
    recorded as suppressed deliveries, so replaying last month does not page anyone today.
    ``cache``: the inputs a long-running jobs process carries between runs.
    """
    replay = as_of < utcnow() - REPLAY_AFTER
    totals = {"tenants": 0, "opened": 0, "updated": 0, "reopened": 0, "resolved": 0}
    totals["tickets_matched"] = 0
    totals["replay"] = int(replay)
    for tenant_id in ScoresRepository(session).tenants_with_devices():
        counts = detect_tenant(
            session,
            tenant_id,
            as_of,
            replay=replay,
            cache=cache,
            receive_lag_s=settings.scoring_receive_lag_s,
        )
        totals["tenants"] += 1
        for k, v in counts.items():
            totals[k] += v
    return totals


# -- the API -----------------------------------------------------------------------------


def alert_out(
    alert: Alert, hostnames: dict[uuid.UUID, str], *, detail: bool = False
) -> dict[str, Any]:
    """An alert as the API shows it (the contract's fields; ``detail`` adds the evidence)."""
    ids = [uuid.UUID(d) for d in alert.affected_device_ids]
    out: dict[str, Any] = {
        "id": alert.id,
        "tenant_id": alert.tenant_id,
        "kind": alert.kind,
        "scope": alert.scope,
        "scope_key": alert.scope_key,
        "metric": alert.metric,
        "title": alert.title,
        "onset": alert.onset,
        "detected_at": alert.detected_at,
        "updated_at": alert.updated_at,
        "severity": alert.severity,
        "affected_devices": {
            "count": alert.affected_count,
            "devices": [
                {"device_id": d, "hostname": hostnames.get(d)} for d in ids[: 200 if detail else 20]
            ],
        },
        "suspected_change": alert.suspected_change,
        "status": alert.status,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "reopened_at": alert.reopened_at,
        "reopen_count": len(alert.reopenings),
    }
    if detail:
        out["reopenings"] = [
            {k: datetime.fromisoformat(v) for k, v in r.items()} for r in alert.reopenings
        ]
        out["baseline"] = alert.baseline
        out["current"] = alert.current
        out["effect_size"] = alert.effect_size
        out["evidence"] = alert.evidence
    return out


def list_alerts(
    session: Session,
    identity: Identity,
    status: str,
    *,
    tenant: uuid.UUID | None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """The caller's alerts by status (``open``, ``acknowledged``, ``resolved`` or ``all``)."""
    if status not in (*STATUSES, "all"):
        raise UnprocessableEntity(
            "status is open, acknowledged, resolved or all", code="bad_status", field="status"
        )
    if not 1 <= limit <= 1000 or offset < 0:
        raise UnprocessableEntity("limit is 1-1000, offset ≥ 0", code="bad_page", field="limit")
    repo = AlertRepository(session)
    alerts = repo.list(identity.visible_tenant(tenant), status, limit=limit, offset=offset)
    ids = [uuid.UUID(d) for a in alerts for d in a.affected_device_ids[:20]]
    names = DeviceRepository(repo.session).hostnames(ids)
    return {"items": [alert_out(a, names) for a in alerts], "limit": limit, "offset": offset}


def _visible(session: Session, identity: Identity, alert_id: uuid.UUID) -> Alert:
    alert = AlertRepository(session).get(alert_id)
    visible = identity.visible_tenant(None)
    if alert is None or (visible is not None and alert.tenant_id != visible):
        raise NotFound("no such alert", code="alert_not_found")
    return alert


def get_alert(session: Session, identity: Identity, alert_id: uuid.UUID) -> dict[str, Any]:
    """One alert with its evidence, its first ticket and the lead time (404 for another
    tenant's). ``lead_time_h`` = first ticket - detected_at: positive when DexScope saw it
    first."""
    alert = _visible(session, identity, alert_id)
    names = DeviceRepository(session).hostnames([uuid.UUID(d) for d in alert.affected_device_ids])
    out = alert_out(alert, names, detail=True)
    first = first_ticket_at(session, alert.id)
    out["first_ticket_at"] = first
    out["lead_time_h"] = (
        None if first is None else round((first - alert.detected_at).total_seconds() / 3600, 2)
    )
    return out


def set_status(
    session: Session, identity: Identity, alert_id: uuid.UUID, action: str, now: datetime
) -> dict[str, Any]:
    """Acknowledge or resolve an alert by hand (admin or analyst); commits."""
    if identity.role not in (Role.ADMIN, Role.ANALYST):
        raise Forbidden("working alerts needs the admin or analyst role", code="role_required")
    alert = _visible(session, identity, alert_id)
    if action == "acknowledge":
        if alert.status == "resolved":
            raise UnprocessableEntity(
                "a resolved alert cannot be acknowledged", code="alert_resolved"
            )
        alert.status = "acknowledged"
        alert.acknowledged_at = now
        alert.acknowledged_by = f"{identity.kind}:{identity.subject_id}"
    elif action == "resolve":
        alert.status = "resolved"
        alert.resolved_at = now
    else:  # pragma: no cover - the router only routes the two actions
        raise UnprocessableEntity(f"unknown action {action!r}", code="bad_action")
    session.commit()
    return get_alert(session, identity, alert_id)
