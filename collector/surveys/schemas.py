"""API shapes of survey campaigns and their results.

The request mirrors the campaign JSON the agent parses (``agent.surveys.model``) field by
field and bound by bound, plus ``targeting`` (which devices get it) and, for MSP-wide
callers, ``tenant_id``. Validation is strict (no type coercion, unknown keys refused), so
whatever the API accepts, every agent accepts too. The collector does not import the agent
package; :data:`SCALES` and :data:`EVENT_TRIGGER_TYPES` repeat the agent's constants, and a
test checks they agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from dexscope.wire import SURVEY_OUTCOMES, SURVEY_SCALES, SURVEY_TRIGGER_EVENT_TYPES

__all__ = [
    "CAMPAIGN_REQUEST",
    "EVENT_TRIGGER_TYPES",
    "OUTCOMES",
    "SCALES",
    "TRIGGER_KINDS",
    "CampaignIn",
    "CampaignList",
    "CampaignOut",
    "CampaignResults",
    "ConfidenceInterval",
    "ControlTrigger",
    "EventTrigger",
    "OutcomeSummary",
    "PrimingEffect",
    "PulseTrigger",
    "QuestionIn",
    "ScoreSummary",
    "Targeting",
    "TrendPoint",
]

SCALES: Final[Mapping[str, tuple[int, int]]] = SURVEY_SCALES
"""Answer scale (lowest, highest value) of each question type (shared with the agent)."""

EVENT_TRIGGER_TYPES: Final = SURVEY_TRIGGER_EVENT_TYPES
"""Event types that may trigger a survey (shared with the agent)."""

OUTCOMES: Final = SURVEY_OUTCOMES
"""What can become of a prompt (the wire's ``survey_response.outcome``)."""

TRIGGER_KINDS: Final = ("pulse", "event", "control")
"""Why a user was asked (the campaign's ``trigger.kind``, an answer's ``trigger``)."""

_WEEK_S = 7 * 86400.0
_STRICT = ConfigDict(extra="forbid", strict=True)

QuestionType = Literal["stars", "emoji", "nps", "ces", "yes_no"]
EventTriggerType = Literal["app_crash", "app_hang", "boot", "logon", "system_crash"]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
SampleRate = Annotated[float, Field(ge=0.0, le=1.0)]
PeriodDays = Annotated[float, Field(ge=1.0, le=366.0)]
WeekSeconds = Annotated[float, Field(ge=0.0, le=_WEEK_S)]
CampaignId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    ),
]
"""The agent's ``id`` (≤ 64 chars), limited to URL-safe characters (it is a path segment)."""


class QuestionIn(BaseModel):
    """What is asked: the type fixes the answer scale (:data:`SCALES`)."""

    model_config = _STRICT

    type: QuestionType
    text: Text300
    follow_up: Text300 | None = None


class PulseTrigger(BaseModel):
    """Ask a random ``sample_rate`` share of devices once per ``period_days``."""

    model_config = _STRICT

    kind: Literal["pulse"]
    sample_rate: SampleRate = 1.0
    period_days: PeriodDays = 7.0


class ControlTrigger(BaseModel):
    """Like a pulse, tied to no event: the baseline that tells priming from real pain."""

    model_config = _STRICT

    kind: Literal["control"]
    sample_rate: SampleRate = 1.0
    period_days: PeriodDays = 7.0


class EventTrigger(BaseModel):
    """Ask ``delay_s`` after every ``every_n``-th event of ``event_types``."""

    model_config = _STRICT

    kind: Literal["event"]
    event_types: Annotated[list[EventTriggerType], Field(min_length=1)]
    delay_s: WeekSeconds = 300.0
    every_n: Annotated[int, Field(ge=1, le=1000)] = 1
    min_duration_s: WeekSeconds | None = None
    sample_rate: SampleRate = 1.0


class Targeting(BaseModel):
    """Which devices of the tenant get the campaign.

    A device matches when ``personas`` is empty or holds its persona hint, and every tag
    in ``tags`` has the same value on the device. Empty targeting = every device.
    """

    model_config = _STRICT

    personas: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list
    )
    tags: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(default_factory=dict)


class CampaignIn(BaseModel):
    """``POST /api/v1/campaigns``: the agent's campaign JSON plus ``targeting``.

    ``id`` is generated (a UUID) when omitted. ``tenant_id`` is needed only by callers not
    bound to a tenant (the MSP's staff); a tenant-bound caller may omit it or repeat its own.
    """

    model_config = _STRICT

    id: CampaignId | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    question: QuestionIn
    trigger: Annotated[PulseTrigger | EventTrigger | ControlTrigger, Field(discriminator="kind")]
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    anonymous: bool = False
    expires_after_s: Annotated[float, Field(ge=60.0, le=_WEEK_S)] = 8 * 3600.0
    min_responses: Annotated[int, Field(ge=1, le=1000)] = 5
    """Fewest scored answers before any result is shown (protects individuals)."""
    targeting: Targeting = Field(default_factory=Targeting)
    tenant_id: uuid.UUID | None = None

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("starts_at")
        if value is not None and starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value


CAMPAIGN_REQUEST: TypeAdapter[CampaignIn] = TypeAdapter(CampaignIn)
"""Validator (and JSON Schema) of the create request."""


class CampaignOut(BaseModel):
    """A stored campaign: the agent's shape, its targeting, tenant and provenance."""

    id: str
    tenant_id: uuid.UUID
    name: str
    question: dict[str, Any]
    trigger: dict[str, Any]
    targeting: dict[str, Any]
    starts_at: datetime
    ends_at: datetime | None
    anonymous: bool
    expires_after_s: float
    min_responses: int
    created_at: datetime
    created_by: str | None


class CampaignList(BaseModel):
    """The campaigns visible to the caller, newest first."""

    items: list[CampaignOut]


class ConfidenceInterval(BaseModel):
    """A 95 % confidence interval of a mean score (normal approximation)."""

    low: float
    high: float


class ScoreSummary(BaseModel):
    """Answers mapped to 0-100 from the question's scale: ``(v - lo) / (hi - lo) * 100``."""

    n: int
    """Answers with a value on the question's scale."""
    mean: float | None
    stdev: float | None
    """Sample standard deviation (n - 1); None below two answers."""
    ci95: ConfidenceInterval | None
    """``mean ± 1.96 · stdev / √n``; None below five answers."""
    note: str | None
    """``"not enough data"`` when there is no interval; ``"hidden: fewer than N answers"``
    when there are fewer than the campaign's ``min_responses`` (then mean and stdev are
    None too, so no individual answer can be read off a small group)."""


class OutcomeSummary(BaseModel):
    """What became of a set of prompts."""

    prompts: int
    counts: dict[str, int]
    """Prompts by outcome (every outcome present, zero or more)."""
    response_rate: float | None
    """``answered / prompts``; None when there were no prompts."""
    score: ScoreSummary


class PrimingEffect(BaseModel):
    """Event-triggered minus control mean score: how much asking right after a bad event
    colours the answer (negative: people answer worse when just hit), with a 95 % interval
    (Welch, normal approximation). None until both groups reach ``min_responses`` (and 2)."""

    event_n: int
    control_n: int
    difference: float | None
    ci95: ConfidenceInterval | None
    note: str | None


class TrendPoint(OutcomeSummary):
    """One ISO week (Monday 00:00 UTC) of a campaign's prompts."""

    week_start: datetime


class CampaignResults(OutcomeSummary):
    """``GET /api/v1/campaigns/{id}/results``: the whole campaign, and split by trigger,
    by the devices' persona and by week."""

    campaign_id: str
    question_type: str
    scale: tuple[int, int]
    min_responses: int
    by_trigger: dict[str, OutcomeSummary]
    """The same figures for pulse, event and control prompts."""
    by_persona: dict[str, OutcomeSummary]
    """The same figures per persona of the answering devices (``unassigned`` before one)."""
    priming: PrimingEffect
    trend: list[TrendPoint]
    """Week by week, oldest first."""
