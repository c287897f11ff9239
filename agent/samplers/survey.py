"""``survey``: drives the micro-surveys on this device (no prompt without a campaign).

Every run: the notable events spooled since the previous run go to the planner (event
triggers, control exclusions); the answers the user-session helper left in the prompt box
become ``survey_response`` events; prompts nobody answered in time expire (and are
withdrawn from the box); and if a campaign is due and the fatigue rules allow it, one new
prompt is posted to the box for the helper to show. The planner's state is remembered with
the round's events (one spool transaction), and the decisions not to ask are counted by
reason for ``agent_health`` (``survey_skips``).

Campaigns and fatigue rules come from the collector (``campaigns`` and ``surveys`` of the
agent configuration), carried as this sampler's options ``campaigns`` and ``fatigue`` and
validated before a configuration is accepted. The box is ``STATE_DIR/surveys`` (see
:mod:`agent.surveys.box`), private to the service's account; with ``agent run --survey-box
DIR`` (or ``DEXSCOPE_SURVEY_BOX``, :attr:`SamplerContext.survey_box`) it is ``DIR`` in the
box's shared mode, for a system service whose helpers run as each signed-in user. Answers
carry no user identity: the planner works per device (its primary user), and anonymous
campaigns carry nothing that could identify anyone.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.platform.common import stable_event_id
from agent.samplers import Sampler, SamplerContext, register
from agent.state import load_identity
from agent.surveys.box import SurveyBox
from agent.surveys.model import Answer, Campaign, CampaignError, Prompt, parse_campaign
from agent.surveys.policy import FatigueSettings, PlannerState, SurveyPlanner
from dexscope.wire import Event

__all__ = ["SURVEY_BOX", "SurveySampler", "response_event", "survey_box"]

SURVEY_BOX = "surveys"
"""The prompt box's folder name inside the state directory."""
_STATE = "survey.state"


def survey_box(ctx: SamplerContext) -> SurveyBox:
    """The service's side of the prompt box: ``ctx.survey_box`` shared with every local
    account when set, else the private ``STATE_DIR/surveys``."""
    if ctx.survey_box is not None:
        return SurveyBox(ctx.survey_box, shared=True)
    return SurveyBox(ctx.state_dir / SURVEY_BOX)


def response_event(prompt: Prompt, answer: Answer) -> dict[str, Any]:
    """The ``survey_response`` wire event for what became of ``prompt``.

    The event id derives from the prompt, so one prompt gives one stored answer whatever
    happens to the files or the agent in between.
    """
    event: dict[str, Any] = {
        "event_id": stable_event_id("survey", prompt.prompt_id),
        "ts": answer.answered_at or datetime.now(UTC),
        "type": "survey_response",
        "campaign_id": prompt.campaign_id,
        "prompt_id": _uuid_text(prompt.prompt_id),
        "outcome": answer.outcome,
        "question_type": prompt.question.type,
        "trigger": prompt.trigger,
    }
    if answer.outcome == "answered" and answer.value is not None:
        event["value"] = float(answer.value)
    if answer.comment:
        event["comment"] = answer.comment[:2000]
    if prompt.trigger_event_id:
        event["trigger_event_id"] = prompt.trigger_event_id
    if answer.shown_at and answer.answered_at and answer.answered_at >= answer.shown_at:
        event["latency_s"] = round(
            min((answer.answered_at - answer.shown_at).total_seconds(), 7 * 86400.0), 3
        )
    return event


def _uuid_text(prompt_id: str) -> str:
    # prompt ids are UUID text already; anything else is mapped to a stable UUID
    try:
        return str(uuid.UUID(prompt_id))
    except ValueError:
        return str(stable_event_id("prompt", prompt_id))


@register
class SurveySampler(Sampler):
    """Posts due prompts to the box and turns answers into ``survey_response`` events."""

    name = "survey"
    interval_s = 60.0

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._campaigns: tuple[Campaign, ...] = ()
        self._fatigue = FatigueSettings()
        self._planner: SurveyPlanner | None = None
        self._state: PlannerState | None = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """``campaigns``: a list of campaigns (collector format); ``fatigue``: the rules."""
        for key in options:
            if key not in ("campaigns", "fatigue"):
                raise ValueError(f"{key}: unknown key")
        campaigns = options.get("campaigns", [])
        if not isinstance(campaigns, list):
            raise ValueError("campaigns: must be a list")
        seen: set[str] = set()
        for index, raw in enumerate(campaigns):
            try:
                campaign = parse_campaign(raw)
            except CampaignError as exc:
                raise ValueError(f"campaigns[{index}].{exc}") from exc
            if campaign.id in seen:
                raise ValueError(f"campaigns[{index}].id: duplicate {campaign.id!r}")
            seen.add(campaign.id)
        fatigue = options.get("fatigue", {})
        if not isinstance(fatigue, Mapping):
            raise ValueError("fatigue: must be an object")
        try:
            FatigueSettings.from_config(fatigue)
        except ValueError as exc:
            raise ValueError(f"fatigue.{exc}") from exc

    def configure(self, options: Mapping[str, Any]) -> None:
        """Take the campaigns and rules; the planner is rebuilt on the same state."""
        self._campaigns = tuple(parse_campaign(raw) for raw in options.get("campaigns", []))
        self._fatigue = FatigueSettings.from_config(options.get("fatigue", {}))
        self._planner = None

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """One planning pass (see the module docstring)."""
        now = self._clock()
        planner = self._planner_for(ctx, now)
        while ctx.observed:
            planner.observe(ctx.observed.popleft())
        box = survey_box(ctx)
        events: list[dict[str, Any]] = []

        def spool_answers(pairs: list[tuple[Prompt, Answer]]) -> None:
            # Spooled before the box lets go of the files; an answer to a prompt the planner
            # already closed (expired a moment before) still goes: the collector keeps one
            # response per prompt (the event id derives from it).
            answered = []
            for prompt, answer in pairs:
                planner.record(answer, now)
                answered.append(response_event(prompt, answer))
            if ctx.spool_now is None:
                events.extend(answered)
                return
            ctx.spool_now(answered, {_STATE: planner.state.to_json()})  # type: ignore[arg-type]

        box.collect_answers(spool_answers)
        rejected = box.take_rejections()
        if rejected:
            total = ctx.agent_state.setdefault("survey_skips", {})
            for reason, count in rejected.items():
                key = f"answer_rejected_{reason}"
                total[key] = total.get(key, 0) + count
        for prompt in planner.expired(now):
            box.withdraw(prompt.prompt_id)
            events.append(
                response_event(prompt, Answer(prompt.prompt_id, prompt.campaign_id, "expired"))
            )
        for prompt in planner.due(now):
            box.post(prompt)
        skips = planner.take_skips()
        if skips:
            total = ctx.agent_state.setdefault("survey_skips", {})
            for reason, count in skips.items():
                total[reason] = total.get(reason, 0) + count
        state = planner.state.to_json()
        if ctx.recall(_STATE) != state:
            ctx.remember(_STATE, state)
        return events  # type: ignore[return-value]

    def _planner_for(self, ctx: SamplerContext, now: datetime) -> SurveyPlanner:
        if self._state is None:
            self._state = PlannerState.from_json(ctx.recall(_STATE))
        local = now.astimezone().tzinfo or UTC
        if self._planner is None or self._planner.tz.utcoffset(now) != local.utcoffset(now):
            # built anew when the campaigns change, and when the local UTC offset does
            # (daylight saving): working hours are local time
            self._planner = SurveyPlanner(
                self._campaigns,
                self._fatigue,
                self._state,
                device_key=_device_key(ctx),
                tz=local,
            )
        return self._planner


def _device_key(ctx: SamplerContext) -> str:
    """Stable per device and not secret: the sampling draws must not change on restart, and
    must differ between devices (so the device id, not the state path)."""
    identity = load_identity(ctx.state_dir)
    if identity is not None:
        return identity.device_id
    return hashlib.sha256(str(ctx.state_dir.resolve()).encode()).hexdigest()[:32]
