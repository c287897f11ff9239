"""Personas over HTTP: list, read, create-or-update, and a device's manual override."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from collector.auth import AdminIdentity, CurrentIdentity
from collector.db import SessionDep
from collector.ingest.body import read_limited
from collector.personas import service
from collector.personas.schemas import (
    DEVICE_PERSONA_REQUEST,
    PERSONA_REQUEST,
    DevicePersonaOut,
    PersonaList,
    PersonaOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["personas"])

_MAX_PERSONA_BODY = 64 * 1024


@router.get("/personas", response_model=PersonaList)
def list_personas(
    identity: CurrentIdentity, session: SessionDep, tenant: uuid.UUID | None = None
) -> PersonaList:
    """Built-ins and the tenant's personas, every effective parameter, devices assigned."""
    return service.list_personas(session, identity.visible_tenant(tenant))


@router.get("/personas/{name}", response_model=PersonaOut)
def get_persona(
    name: str, identity: CurrentIdentity, session: SessionDep, tenant: uuid.UUID | None = None
) -> PersonaOut:
    """One persona as the tenant sees it (404 if the tenant has none of that name)."""
    return service.get_persona(session, name, identity.visible_tenant(tenant))


@router.post(
    "/personas",
    status_code=201,
    response_model=PersonaOut,
    responses={200: {"description": "an existing persona was updated", "model": PersonaOut}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PERSONA_REQUEST.json_schema()}},
        }
    },
)
async def save_persona(
    request: Request, response: Response, identity: AdminIdentity, session: SessionDep
) -> PersonaOut:
    """Create (201) or replace by name (200) a tenant persona; admins only."""
    body = await read_limited(
        request.stream(), request.headers.get("content-length"), _MAX_PERSONA_BODY
    )
    out, created = await run_in_threadpool(service.save_persona, session, identity, body)
    response.status_code = 201 if created else 200
    return out


@router.put(
    "/devices/{device_id}/persona",
    response_model=DevicePersonaOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DEVICE_PERSONA_REQUEST.json_schema()}},
        }
    },
)
async def set_device_persona(
    device_id: uuid.UUID, request: Request, identity: CurrentIdentity, session: SessionDep
) -> DevicePersonaOut:
    """Set (``{"persona": "developer"}``) or clear (``{"persona": null}``) the override."""
    body = await read_limited(
        request.stream(), request.headers.get("content-length"), _MAX_PERSONA_BODY
    )
    return await run_in_threadpool(service.set_device_persona, session, identity, device_id, body)
