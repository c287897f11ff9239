"""Scores over HTTP: daily scores per level, and the explanation of any score (thin layer)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from collector.auth import CurrentIdentity
from collector.db import SessionDep
from collector.scores import service
from collector.scores.schemas import DeviceExplanation, ScopeExplanation, ScoreList

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["scores"])

LevelQuery = Annotated[service.Level, Query(description="device, persona, group, app or tenant")]


@router.get("/scores", response_model=ScoreList, response_model_by_alias=True)
def list_scores(
    identity: CurrentIdentity,
    session: SessionDep,
    level: LevelQuery = "tenant",
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    window: Annotated[int, Query(description="trailing days per figure: 1, 7 or 28")] = 1,
    tenant: uuid.UUID | None = None,
    persona: str | None = None,
    app: str | None = None,
    device_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Daily scores with sub-scores (default: the last 7 scored days, window 1)."""
    return service.list_scores(
        session,
        identity,
        level,
        tenant=tenant,
        start=from_,
        end=to,
        window=window,
        persona=persona,
        app=app,
        device_id=device_id,
    )


@router.get(
    "/scores/{level}/{key}/explain",
    response_model=DeviceExplanation | ScopeExplanation,
    response_model_by_alias=True,
)
def explain(
    level: service.Level,
    key: str,
    identity: CurrentIdentity,
    session: SessionDep,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query(description="device level: the day explained")] = None,
    tenant: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The top contributors of a score: metrics, apps, devices and (device level) events."""
    return service.explain(session, identity, level, key, tenant=tenant, start=from_, end=to)
