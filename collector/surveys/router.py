"""Survey campaigns over HTTP: create, list, read, results (thin layer over the service)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from collector.auth import CurrentIdentity
from collector.db import SessionDep
from collector.ingest.body import read_limited
from collector.surveys import service
from collector.surveys.schemas import (
    CAMPAIGN_REQUEST,
    CampaignList,
    CampaignOut,
    CampaignResults,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["surveys"])

_MAX_CAMPAIGN_BODY = 64 * 1024


@router.post(
    "/campaigns",
    status_code=201,
    response_model=CampaignOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CAMPAIGN_REQUEST.json_schema()}},
        }
    },
)
async def create_campaign(
    request: Request, identity: CurrentIdentity, session: SessionDep
) -> CampaignOut:
    """Create a survey campaign (admin or analyst; MSP-wide callers name ``tenant_id``)."""
    body = await read_limited(
        request.stream(), request.headers.get("content-length"), _MAX_CAMPAIGN_BODY
    )
    return await run_in_threadpool(service.create_campaign, session, identity, body)


@router.get("/campaigns", response_model=CampaignList)
def list_campaigns(
    identity: CurrentIdentity, session: SessionDep, tenant: uuid.UUID | None = None
) -> CampaignList:
    """The campaigns the caller may see (one tenant for tenant-bound callers), newest first."""
    return service.list_campaigns(session, identity.visible_tenant(tenant))


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
def get_campaign(
    campaign_id: str,
    identity: CurrentIdentity,
    session: SessionDep,
    tenant: uuid.UUID | None = None,
) -> CampaignOut:
    """One campaign (404 when it belongs to another tenant)."""
    return service.get_campaign(session, campaign_id, identity.visible_tenant(tenant))


@router.get("/campaigns/{campaign_id}/results", response_model=CampaignResults)
def campaign_results(
    campaign_id: str,
    identity: CurrentIdentity,
    session: SessionDep,
    tenant: uuid.UUID | None = None,
) -> CampaignResults:
    """Outcome counts, response rate and mean score with its 95 % CI, split by trigger."""
    return service.campaign_results(session, campaign_id, identity.visible_tenant(tenant))
