"""Webhooks over HTTP: create, list, delete, and a webhook's deliveries (admins only)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from collector.auth import AdminIdentity
from collector.db import SessionDep
from collector.ingest.body import read_limited
from collector.notifications import service
from collector.notifications.schemas import (
    WEBHOOK_REQUEST,
    DeliveryList,
    WebhookCreated,
    WebhookList,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["webhooks"])

_MAX_WEBHOOK_BODY = 16 * 1024


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WEBHOOK_REQUEST.json_schema()}},
        }
    },
)
async def create_webhook(
    request: Request, identity: AdminIdentity, session: SessionDep
) -> WebhookCreated:
    """Subscribe a URL to the tenant's alert events; the answer holds the signing secret,
    shown this once."""
    body = await read_limited(
        request.stream(), request.headers.get("content-length"), _MAX_WEBHOOK_BODY
    )
    return await run_in_threadpool(service.create_webhook, session, identity, body)


@router.get("/webhooks", response_model=WebhookList)
def list_webhooks(
    identity: AdminIdentity, session: SessionDep, tenant: uuid.UUID | None = None
) -> WebhookList:
    """The webhooks of the caller's tenant (MSP-wide admins: all, or ``?tenant=``)."""
    return service.list_webhooks(session, identity, tenant)


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: uuid.UUID, identity: AdminIdentity, session: SessionDep) -> Response:
    """Remove a webhook and its queued deliveries."""
    service.delete_webhook(session, identity, webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: uuid.UUID, identity: AdminIdentity, session: SessionDep, limit: int = 100
) -> DeliveryList:
    """The webhook's most recent deliveries: status, attempts, last HTTP status and error."""
    return service.list_deliveries(session, identity, webhook_id, limit)
