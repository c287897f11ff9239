"""Survey use cases: create and read campaigns, serve them to agents, summarise answers.

Answers are read from the raw ``survey_response`` events; see
:mod:`collector.surveys.repository` for why the campaign filter runs in Python.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.devices.models import Device
from collector.errors import Conflict, Forbidden, NotFound, UnprocessableEntity, loc_to_field
from collector.identity.roles import Identity, Role
from collector.surveys.models import SurveyCampaign
from collector.surveys.repository import SurveyRepository
from collector.surveys.schemas import (
    CAMPAIGN_REQUEST,
    OUTCOMES,
    SCALES,
    TRIGGER_KINDS,
    CampaignIn,
    CampaignList,
    CampaignOut,
    CampaignResults,
    ConfidenceInterval,
    OutcomeSummary,
    PrimingEffect,
    ScoreSummary,
    TrendPoint,
)
from collector.tenants.service import target_tenant

__all__ = [
    "MIN_N_FOR_CI",
    "MIN_RESPONSES",
    "NOT_ENOUGH_DATA",
    "SEEN_OUTCOMES",
    "Z_95",
    "agent_campaigns",
    "agent_shape",
    "campaign_results",
    "create_campaign",
    "get_campaign",
    "last_prompt_at",
    "list_campaigns",
    "summarise_responses",
    "targeting_matches",
]

MIN_N_FOR_CI: Final = 5
"""Below this many scored answers a mean gets no confidence interval."""
MIN_RESPONSES: Final = 5
"""Default fewest answers before a campaign's result is shown at all (``min_responses``)."""
NOT_ENOUGH_DATA: Final = "not enough data"
Z_95: Final = 1.96
"""Two-sided 95 % quantile of the normal distribution."""
SEEN_OUTCOMES: Final = frozenset({"answered", "dismissed", "snoozed", "opted_out"})
"""Outcomes of a prompt the user actually saw (``expired`` was never seen): fatigue counts
these."""
_EDITORS: Final = frozenset({Role.ADMIN, Role.ANALYST})


# --- creating and reading campaigns -------------------------------------------------------


def _field(error: ErrorDetails) -> str | None:
    """The request field an error is about, without pydantic's union tags."""
    loc = list(error["loc"])
    if len(loc) > 1 and loc[0] == "trigger" and loc[1] in TRIGGER_KINDS:
        del loc[1]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
    return loc_to_field(loc) or None


def _parse(body: bytes) -> CampaignIn:
    try:
        return CAMPAIGN_REQUEST.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise UnprocessableEntity(
                f"malformed JSON: {first['msg']}", code="malformed_json"
            ) from exc
        field = _field(first)
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        raise UnprocessableEntity(message, field=field) from exc


def _out(row: SurveyCampaign) -> CampaignOut:
    return CampaignOut(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        question=row.question,
        trigger=row.trigger,
        targeting=row.targeting,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        anonymous=row.anonymous,
        expires_after_s=row.expires_after_s,
        min_responses=row.min_responses,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def create_campaign(session: Session, identity: Identity, body: bytes) -> CampaignOut:
    """Validate and store a campaign from a JSON body; commits.

    Admins and analysts may create (a viewer gets 403); the campaign goes to the caller's
    tenant, or to ``tenant_id`` for MSP-wide callers. A taken ``id`` gives 409.
    """
    if identity.role not in _EDITORS:
        raise Forbidden("creating campaigns needs the admin or analyst role", code="role_required")
    request = _parse(body)
    tenant_id = target_tenant(session, identity, request.tenant_id, "create campaigns")
    campaign_id = request.id or str(uuid.uuid4())
    repo = SurveyRepository(session)
    taken = Conflict(
        f"a campaign {campaign_id!r} already exists", code="campaign_exists", field="id"
    )
    if repo.find(campaign_id, tenant_id):
        raise taken
    row = SurveyCampaign(
        tenant_id=tenant_id,
        id=campaign_id,
        name=request.name,
        question=request.question.model_dump(mode="json", exclude_none=True),
        trigger=request.trigger.model_dump(mode="json", exclude_none=True),
        targeting=request.targeting.model_dump(mode="json"),
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        anonymous=request.anonymous,
        expires_after_s=request.expires_after_s,
        min_responses=request.min_responses,
        created_at=utcnow(),
        created_by=f"{identity.kind}:{identity.subject_id}",
    )
    try:
        repo.add(row)
        session.commit()
    except IntegrityError as exc:  # a concurrent create with the same id
        session.rollback()
        raise taken from exc
    return _out(row)


def list_campaigns(session: Session, tenant_id: uuid.UUID | None) -> CampaignList:
    """The campaigns of ``tenant_id`` (None = every tenant), newest first."""
    return CampaignList(items=[_out(r) for r in SurveyRepository(session).for_tenant(tenant_id)])


def _one(session: Session, campaign_id: str, tenant_id: uuid.UUID | None) -> SurveyCampaign:
    rows = SurveyRepository(session).find(campaign_id, tenant_id)
    if not rows:
        raise NotFound(f"no campaign {campaign_id!r}")
    if len(rows) > 1:
        raise Conflict(
            f"campaign id {campaign_id!r} exists in several tenants; pass ?tenant=<id>",
            code="ambiguous_campaign",
            field="tenant",
        )
    return rows[0]


def get_campaign(session: Session, campaign_id: str, tenant_id: uuid.UUID | None) -> CampaignOut:
    """One campaign visible to the caller (404 for another tenant's)."""
    return _out(_one(session, campaign_id, tenant_id))


# --- results ------------------------------------------------------------------------------


def _hidden(min_responses: int) -> str:
    return f"hidden: fewer than {min_responses} answers"


def _score(values: list[float], min_responses: int) -> ScoreSummary:
    n = len(values)
    if n == 0:
        return ScoreSummary(n=0, mean=None, stdev=None, ci95=None, note=NOT_ENOUGH_DATA)
    if n < min_responses:
        return ScoreSummary(n=n, mean=None, stdev=None, ci95=None, note=_hidden(min_responses))
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if n >= 2 else None
    if n < MIN_N_FOR_CI or stdev is None:
        return ScoreSummary(n=n, mean=mean, stdev=stdev, ci95=None, note=NOT_ENOUGH_DATA)
    half = Z_95 * stdev / math.sqrt(n)
    return ScoreSummary(
        n=n,
        mean=mean,
        stdev=stdev,
        ci95=ConfidenceInterval(low=mean - half, high=mean + half),
        note=None,
    )


def _outcomes(
    responses: list[Mapping[str, Any]], scale: tuple[int, int], min_responses: int
) -> OutcomeSummary:
    lo, hi = scale
    counts = dict.fromkeys(OUTCOMES, 0)
    values: list[float] = []
    for data in responses:
        outcome = data.get("outcome")
        if outcome in counts:
            counts[str(outcome)] += 1
        value = data.get("value")
        if (
            outcome == "answered"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and lo <= value <= hi
        ):
            values.append((float(value) - lo) / (hi - lo) * 100.0)
    prompts = len(responses)
    return OutcomeSummary(
        prompts=prompts,
        counts=counts,
        response_rate=counts["answered"] / prompts if prompts else None,
        score=_score(values, min_responses),
    )


def _priming(event: ScoreSummary, control: ScoreSummary, min_responses: int) -> PrimingEffect:
    """Event-triggered minus control mean, with a Welch normal-approximation 95 % interval."""
    shown = (
        event.mean is not None
        and control.mean is not None
        and event.stdev is not None
        and control.stdev is not None
    )
    if not shown:
        note = (
            f"needs at least {max(min_responses, 2)} answers in both the event-triggered "
            "and the control group"
        )
        return PrimingEffect(
            event_n=event.n, control_n=control.n, difference=None, ci95=None, note=note
        )
    assert event.mean is not None and control.mean is not None  # for the type checker
    assert event.stdev is not None and control.stdev is not None
    difference = event.mean - control.mean
    se = math.sqrt(event.stdev**2 / event.n + control.stdev**2 / control.n)
    return PrimingEffect(
        event_n=event.n,
        control_n=control.n,
        difference=difference,
        ci95=ConfidenceInterval(low=difference - Z_95 * se, high=difference + Z_95 * se),
        note=None,
    )


def _week_start(ts: datetime) -> datetime:
    day = ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def summarise_responses(
    campaign_id: str,
    question_type: str,
    default_trigger: str,
    responses: Iterable[tuple[datetime, str | None, Mapping[str, Any]]],
    min_responses: int = MIN_RESPONSES,
) -> CampaignResults:
    """Counts, response rate and mean 0-100 score of one campaign's answers, split by
    trigger, by persona and by week, with the priming effect.

    ``responses`` are ``(ts, device persona, data)`` of the campaign's ``survey_response``
    events, oldest first. One prompt counts once, with its newest outcome (a prompt reported
    again, e.g. snoozed then answered, is not two prompts). Values off the question's scale
    are counted as answers but left out of the score. An answer without ``trigger`` counts
    under the campaign's own trigger kind. Any score of fewer than ``min_responses``
    answers is hidden.
    """
    latest: dict[object, tuple[datetime, str | None, Mapping[str, Any]]] = {}
    for index, (ts, persona, data) in enumerate(responses):
        latest[data.get("prompt_id") or ("no prompt id", index)] = (ts, persona, data)
    prompts = list(latest.values())
    scale = SCALES[question_type]
    by_trigger: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in TRIGGER_KINDS}
    by_persona: dict[str, list[Mapping[str, Any]]] = {}
    by_week: dict[datetime, list[Mapping[str, Any]]] = {}
    for ts, persona, data in prompts:
        kind = data.get("trigger") or default_trigger
        by_trigger.setdefault(str(kind), []).append(data)
        by_persona.setdefault(persona or "unassigned", []).append(data)
        by_week.setdefault(_week_start(ts), []).append(data)
    overall = _outcomes([data for _, _, data in prompts], scale, min_responses)
    triggers = {kind: _outcomes(rows, scale, min_responses) for kind, rows in by_trigger.items()}
    return CampaignResults(
        **overall.model_dump(),
        campaign_id=campaign_id,
        question_type=question_type,
        scale=scale,
        min_responses=min_responses,
        by_trigger=triggers,
        by_persona={
            name: _outcomes(rows, scale, min_responses) for name, rows in sorted(by_persona.items())
        },
        priming=_priming(triggers["event"].score, triggers["control"].score, min_responses),
        trend=[
            TrendPoint(week_start=week, **_outcomes(rows, scale, min_responses).model_dump())
            for week, rows in sorted(by_week.items())
        ],
    )


def campaign_results(
    session: Session, campaign_id: str, tenant_id: uuid.UUID | None
) -> CampaignResults:
    """The results of one campaign visible to the caller, from its stored answers."""
    campaign = _one(session, campaign_id, tenant_id)
    responses = [
        (ts, persona, data)
        for ts, persona, data in SurveyRepository(session).tenant_responses(campaign.tenant_id)
        if data.get("campaign_id") == campaign.id
    ]
    return summarise_responses(
        campaign.id,
        campaign.question["type"],
        campaign.trigger["kind"],
        responses,
        campaign.min_responses,
    )


# --- agent configuration ------------------------------------------------------------------


def targeting_matches(
    targeting: Mapping[str, Any], persona: str | None, tags: Mapping[str, str]
) -> bool:
    """Whether a device (persona hint, tags) is targeted.

    True when ``personas`` is empty or holds the persona, and every targeted tag has the
    same value on the device.
    """
    personas = targeting.get("personas") or []
    if personas and persona not in personas:
        return False
    return all(tags.get(key) == value for key, value in (targeting.get("tags") or {}).items())


def agent_shape(campaign: SurveyCampaign) -> dict[str, Any]:
    """A campaign as the agent parses it (``agent.surveys.model.parse_campaign``)."""
    shaped: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "question": dict(campaign.question),
        "trigger": dict(campaign.trigger),
        "starts_at": campaign.starts_at.isoformat(),
        "anonymous": campaign.anonymous,
        "expires_after_s": campaign.expires_after_s,
    }
    if campaign.ends_at is not None:
        shaped["ends_at"] = campaign.ends_at.isoformat()
    return shaped


def agent_campaigns(
    session: Session, device: Device, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The campaigns running now in the device's tenant that target it, in agent shape."""
    active = SurveyRepository(session).active(device.tenant_id, now or utcnow())
    return [
        agent_shape(c)
        for c in active
        if targeting_matches(c.targeting, device.persona or device.persona_hint, device.tags or {})
    ]


def last_prompt_at(session: Session, device: Device) -> datetime | None:
    """When the device last showed a prompt the user saw (:data:`SEEN_OUTCOMES`).

    Served in the agent configuration so that a re-installed agent, with no local
    history, still keeps the gap between prompts.
    """
    for ts, data in SurveyRepository(session).device_responses_newest_first(device.id):
        if data.get("outcome") in SEEN_OUTCOMES:
            return ts
    return None
