"""Enrollment, agent configuration and the device inventory (thin HTTP layer)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from collector.auth import CurrentDevice, CurrentIdentity
from collector.db import SessionDep
from collector.deps import MAX_PAGE_OFFSET, MetricsDep, PageOffset, SettingsDep
from collector.devices import service
from collector.devices.schemas import (
    ENROLL_REQUEST,
    DeviceDetail,
    DevicePage,
    EnrollOut,
    EventPage,
)
from collector.errors import ApiError
from collector.ingest.body import read_limited

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["devices"])

_MAX_ENROLL_BODY = 64 * 1024


@router.post(
    "/enroll",
    status_code=201,
    response_model=EnrollOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ENROLL_REQUEST.json_schema()}},
        }
    },
)
async def enroll(
    request: Request, session: SessionDep, settings: SettingsDep, metrics: MetricsDep
) -> dict[str, Any]:
    """Enroll a device with a tenant's enrollment token; returns its own token, once."""
    try:
        body = await read_limited(
            request.stream(), request.headers.get("content-length"), _MAX_ENROLL_BODY
        )
        result = await run_in_threadpool(service.enroll, session, body, settings)
    except ApiError as exc:
        metrics.enrollments.labels(outcome=exc.code).inc()
        raise
    metrics.enrollments.labels(outcome="enrolled").inc()
    return result


@router.get("/agent/config")
def agent_config(device: CurrentDevice, session: SessionDep) -> dict[str, Any]:
    """The sampling settings and survey campaigns that apply to the calling device."""
    return service.agent_config_for(session, device)


@router.get("/devices", response_model=DevicePage)
def list_devices(
    identity: CurrentIdentity,
    session: SessionDep,
    tenant: uuid.UUID | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: PageOffset = 0,
) -> DevicePage:
    """The device inventory the caller may see (one tenant for tenant-bound callers)."""
    return service.list_devices(
        session, identity.visible_tenant(tenant), limit=limit, offset=offset
    )


@router.get("/devices/{device_id}", response_model=DeviceDetail)
def get_device(
    device_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep
) -> DeviceDetail:
    """One device with a summary of the events it reported."""
    return service.device_detail(session, device_id, identity.visible_tenant(None))


@router.get("/devices/{device_id}/events", response_model=EventPage)
def get_device_events(
    device_id: uuid.UUID,
    identity: CurrentIdentity,
    session: SessionDep,
    type: str | None = None,
    after: int = Query(0, ge=0, le=MAX_PAGE_OFFSET),
    limit: int = Query(500, ge=1, le=5000),
) -> EventPage:
    """A page of the device's raw events in arrival order."""
    return service.device_events(
        session,
        device_id,
        identity.visible_tenant(None),
        event_type=type,
        after=after,
        limit=limit,
    )
