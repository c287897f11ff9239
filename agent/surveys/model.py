"""Campaigns, prompts and answers as the agent sees them (plain frozen dataclasses).

The collector sends campaigns in the agent configuration (``campaigns``: a list of JSON
objects, shape below); :func:`parse_campaign` validates one strictly, so a bad campaign is
refused with a precise message and never half-applied. Answer values are on the question's
own scale (:data:`SCALES`); the scoring maps them to 0-100.

Campaign JSON::

    {"id": "c-2026-11-pulse", "name": "Weekly pulse",
     "question": {"type": "stars", "text": "How well could you work today?",
                  "follow_up": "What got in your way?"},          # follow_up optional
     "trigger": {"kind": "pulse", "sample_rate": 0.05, "period_days": 7},
     #   or {"kind": "event", "event_types": ["app_crash"], "delay_s": 300, "every_n": 1,
     #       "min_duration_s": 120}                              # min_duration_s optional
     #   or {"kind": "control", "sample_rate": 0.05, "period_days": 7}
     "starts_at": "2026-11-01T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z",  # ends_at optional
     "anonymous": false, "expires_after_s": 28800}               # expires_after_s optional
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from dexscope.wire import SURVEY_OUTCOMES, SURVEY_SCALES, SURVEY_TRIGGER_EVENT_TYPES

__all__ = [
    "EVENT_TRIGGER_TYPES",
    "OUTCOMES",
    "SCALES",
    "Answer",
    "Campaign",
    "CampaignError",
    "Prompt",
    "Question",
    "Trigger",
    "parse_campaign",
]

QuestionType = Literal["stars", "emoji", "nps", "ces", "yes_no"]
TriggerKind = Literal["pulse", "event", "control"]
Outcome = Literal["answered", "dismissed", "snoozed", "expired", "opted_out"]

SCALES: Final[Mapping[str, tuple[int, int]]] = SURVEY_SCALES
"""The answer scale of each question type: lowest and highest value (from the wire)."""
EVENT_TRIGGER_TYPES: Final = SURVEY_TRIGGER_EVENT_TYPES
"""Event types that may trigger a survey."""
OUTCOMES: Final = SURVEY_OUTCOMES
"""What can become of a prompt (the wire's ``survey_response.outcome``)."""


class CampaignError(ValueError):
    """A campaign from the collector is malformed; the message names the field."""


@dataclass(frozen=True)
class Question:
    """What is asked, and how it is answered."""

    type: QuestionType
    text: str
    follow_up: str | None = None


@dataclass(frozen=True)
class Trigger:
    """When the question is asked: a pulse, after an event, or a control sample."""

    kind: TriggerKind
    sample_rate: float = 1.0
    period_days: float = 7.0
    event_types: frozenset[str] = frozenset()
    delay_s: float = 300.0
    every_n: int = 1
    min_duration_s: float | None = None


@dataclass(frozen=True)
class Campaign:
    """One survey campaign that applies to this device."""

    id: str
    name: str
    question: Question
    trigger: Trigger
    starts_at: datetime
    ends_at: datetime | None = None
    anonymous: bool = False
    expires_after_s: float = 8 * 3600.0


@dataclass(frozen=True)
class Prompt:
    """One question to show to the user now (written to the prompt box by the service)."""

    prompt_id: str
    campaign_id: str
    question: Question
    trigger: TriggerKind
    created_at: datetime
    expires_at: datetime
    anonymous: bool = False
    trigger_event_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """What became of a prompt (written to the prompt box by the helper)."""

    prompt_id: str
    campaign_id: str
    outcome: Outcome
    shown_at: datetime | None = None
    answered_at: datetime | None = None
    value: int | None = None
    comment: str | None = None


def _text(raw: Mapping[str, Any], key: str, where: str, limit: int, required: bool = True) -> Any:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise CampaignError(f"{where}{key}: must be a non-empty string of at most {limit} chars")
    return value.strip()


def _number(
    raw: Mapping[str, Any], key: str, where: str, lo: float, hi: float, default: float
) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise CampaignError(f"{where}{key}: must be a number from {lo:g} to {hi:g}")
    return float(value)


def _time(raw: Mapping[str, Any], key: str, required: bool) -> datetime | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise CampaignError(f"{key}: must be an ISO 8601 time with a UTC offset")
    return parsed


def parse_campaign(raw: Any) -> Campaign:
    """Validate one campaign object from the collector (see the module docstring)."""
    if not isinstance(raw, Mapping):
        raise CampaignError("campaign: must be an object")
    known = {"id", "name", "question", "trigger", "starts_at", "ends_at", "anonymous",
             "expires_after_s", "targeting"}  # fmt: skip
    unknown = set(raw) - known
    if unknown:
        raise CampaignError(f"{sorted(unknown)[0]}: unknown key")
    q = raw.get("question")
    if not isinstance(q, Mapping):
        raise CampaignError("question: must be an object")
    if q.get("type") not in SCALES:
        raise CampaignError(f"question.type: must be one of {', '.join(SCALES)}")
    question = Question(
        type=q["type"],
        text=_text(q, "text", "question.", 300),
        follow_up=_text(q, "follow_up", "question.", 300, required=False),
    )
    t = raw.get("trigger")
    if not isinstance(t, Mapping):
        raise CampaignError("trigger: must be an object")
    kind = t.get("kind")
    if kind not in ("pulse", "event", "control"):
        raise CampaignError("trigger.kind: must be pulse, event or control")
    event_types = t.get("event_types", [])
    if kind == "event" and (
        not isinstance(event_types, list)
        or not event_types
        or not set(event_types) <= EVENT_TRIGGER_TYPES
    ):
        raise CampaignError(
            f"trigger.event_types: must list some of {', '.join(sorted(EVENT_TRIGGER_TYPES))}"
        )
    every_n = t.get("every_n", 1)
    if isinstance(every_n, bool) or not isinstance(every_n, int) or not 1 <= every_n <= 1000:
        raise CampaignError("trigger.every_n: must be a whole number from 1 to 1000")
    min_duration = t.get("min_duration_s")
    trigger = Trigger(
        kind=kind,
        sample_rate=_number(t, "sample_rate", "trigger.", 0.0, 1.0, 1.0),
        period_days=_number(t, "period_days", "trigger.", 1.0, 366.0, 7.0),
        event_types=frozenset(event_types) if kind == "event" else frozenset(),
        delay_s=_number(t, "delay_s", "trigger.", 0.0, 7 * 86400.0, 300.0),
        every_n=every_n,
        min_duration_s=(
            None
            if min_duration is None
            else _number(t, "min_duration_s", "trigger.", 0.0, 7 * 86400.0, 0.0)
        ),
    )
    anonymous = raw.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise CampaignError("anonymous: must be true or false")
    starts_at = _time(raw, "starts_at", True)
    assert starts_at is not None
    ends_at = _time(raw, "ends_at", False)
    if ends_at is not None and ends_at <= starts_at:
        raise CampaignError("ends_at: must be after starts_at")
    return Campaign(
        id=_text(raw, "id", "", 64),
        name=_text(raw, "name", "", 200),
        question=question,
        trigger=trigger,
        starts_at=starts_at,
        ends_at=ends_at,
        anonymous=anonymous,
        expires_after_s=_number(raw, "expires_after_s", "", 60.0, 7 * 86400.0, 8 * 3600.0),
    )
