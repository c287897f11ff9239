"""Tickets over HTTP: JSON and CSV import, and listing (thin layer over the service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from collector.auth import CurrentIdentity
from collector.db import SessionDep
from collector.deps import PageOffset, SettingsDep
from collector.ingest.body import UnsupportedEncoding, decode_body, read_limited
from collector.tickets import service
from collector.tickets.schemas import TICKET_ENVELOPE, TICKET_LIST, ImportResult, TicketList

__all__ = ["CSV_MEDIA_TYPES", "UnsupportedMediaType", "router"]

router = APIRouter(prefix="/api/v1", tags=["tickets"])

CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})
"""Content types the CSV import accepts."""


class UnsupportedMediaType(UnsupportedEncoding):
    """415: the CSV import was sent something other than ``text/csv``."""

    code = "unsupported_media_type"


async def _body(request: Request, settings: SettingsDep) -> bytes:
    raw = await read_limited(
        request.stream(), request.headers.get("content-length"), settings.max_ticket_body_bytes
    )
    return decode_body(raw, request.headers.get("content-encoding"), settings.max_ticket_body_bytes)


@router.post(
    "/tickets",
    response_model=ImportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [TICKET_LIST.json_schema(), TICKET_ENVELOPE.json_schema()]}
                }
            },
        }
    },
)
async def import_json(
    request: Request,
    identity: CurrentIdentity,
    session: SessionDep,
    settings: SettingsDep,
    tenant_id: uuid.UUID | None = None,
) -> ImportResult:
    """Import ITSM tickets from a JSON list (admin or analyst); a re-sent ``external_id``
    updates its ticket. MSP-wide callers name ``tenant_id`` (query or body)."""
    body = await _body(request, settings)
    return await run_in_threadpool(service.import_tickets_json, session, identity, body, tenant_id)


@router.post(
    "/tickets/import",
    response_model=ImportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_csv(
    request: Request,
    identity: CurrentIdentity,
    session: SessionDep,
    settings: SettingsDep,
    tenant_id: uuid.UUID | None = None,
) -> ImportResult:
    """Import ITSM tickets from CSV (``text/csv``, a header row; extra columns are kept
    in ``extra``). Same rules as the JSON import."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in CSV_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the CSV as text/csv (got {media_type or 'no content type'})"
        )
    body = await _body(request, settings)
    return await run_in_threadpool(service.import_tickets_csv, session, identity, body, tenant_id)


@router.get("/tickets", response_model=TicketList)
def list_tickets(
    identity: CurrentIdentity,
    session: SessionDep,
    opened_from: Annotated[datetime | None, Query(alias="from")] = None,
    opened_to: Annotated[datetime | None, Query(alias="to")] = None,
    alert_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    tenant: uuid.UUID | None = None,
    limit: int = 100,
    offset: PageOffset = 0,
) -> TicketList:
    """Tickets opened in ``[from, to)``, optionally of one alert or device, oldest first."""
    return service.list_tickets(
        session,
        identity.visible_tenant(tenant),
        opened_from=opened_from,
        opened_to=opened_to,
        alert_id=alert_id,
        device_id=device_id,
        limit=limit,
        offset=offset,
    )
