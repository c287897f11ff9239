"""Alerts over HTTP: list, read, acknowledge, resolve (thin layer over the service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from collector.alerts import service
from collector.auth import CurrentIdentity
from collector.db import SessionDep, utcnow
from collector.deps import PageOffset

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts")
def list_alerts(
    identity: CurrentIdentity,
    session: SessionDep,
    status: Annotated[str, Query(description="open, acknowledged, resolved or all")] = "open",
    tenant: uuid.UUID | None = None,
    limit: int = 100,
    offset: PageOffset = 0,
) -> dict[str, Any]:
    """Alerts newest first: kind, scope, title, onset, detected_at, severity, affected
    devices, suspected change, status."""
    return service.list_alerts(session, identity, status, tenant=tenant, limit=limit, offset=offset)


@router.get("/alerts/{alert_id}")
def get_alert(
    alert_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep
) -> dict[str, Any]:
    """One alert with its evidence (baseline vs now, the test, a small series)."""
    return service.get_alert(session, identity, alert_id)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(
    alert_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep
) -> dict[str, Any]:
    """Mark an alert as being worked on (admin or analyst)."""
    return service.set_status(session, identity, alert_id, "acknowledge", utcnow())


@router.post("/alerts/{alert_id}/resolve")
def resolve(alert_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep) -> dict[str, Any]:
    """Close an alert by hand (admin or analyst); detection may open a new one if it persists."""
    return service.set_status(session, identity, alert_id, "resolve", utcnow())
