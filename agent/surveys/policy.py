"""Who is asked what, and when: the agent's survey planner (triggers, sampling, fatigue).

The planner is pure: no I/O, no threads, no clock of its own. The survey sampler feeds it
the notable events the agent spooled (:meth:`SurveyPlanner.observe`), asks it what to show
now (:meth:`SurveyPlanner.due`, with the current time and whether the user is busy), hands
back what became of each prompt (:meth:`SurveyPlanner.record`) and persists
:class:`PlannerState` (``to_json`` / ``from_json``) with its events. The same inputs give the
same decisions: sampling uses a keyed hash, not a random generator.

Triggers:

- **pulse**: per period (``period_days`` from the campaign's ``starts_at``) a device is in
  the sample when ``sample_draw(campaign, device, period) < sample_rate``; a second draw
  picks the moment, uniformly over the period's working time in the device's local time, so
  a fleet is spread over working hours;
- **control**: sampled like a pulse, but a device that had a *bad event* in the
  ``period_days`` before the moment of asking is left out (counted
  ``control_excluded_bad_event``). A bad event is an ``app_crash``, ``app_hang`` or
  ``system_crash``, or any event that matches an event campaign's trigger (type and
  ``min_duration_s``), such as a slow boot;
- **event**: every ``every_n``-th matching event (type, and duration at least
  ``min_duration_s`` when set) schedules a prompt due ``delay_s`` after the event (if the
  campaign's ``sample_rate`` is below 1, only that share of them, by a draw keyed on the
  event id). One trigger waits per campaign: a newer one replaces it (``superseded``).

Priority when several are due at once: event, then control, then pulse (then the earlier
due time, then the campaign id). At most one prompt is open at a time.

Fatigue (:class:`FatigueSettings`): at most one prompt *seen* per ``min_days_between_prompts``
across all campaigns (the server's ``last_prompt_at`` counts too), nothing for
``dnd_after_prompt_s`` after any prompt closes (also an unseen, expired one), no prompt in
quiet hours or on a non-working day, none while the helper says the user is busy. A snoozed
prompt comes back ``snooze_s`` later (the fatigue gap does not hold it back, every other rule
does); "don't ask me this again" stops the campaign on this device for good.

Every decision not to ask is counted by reason (:data:`SKIP_REASONS`): a trigger that is
*dropped* counts its reason once (:data:`DROP_REASONS`); a trigger that is *held back* counts
each distinct reason once, the first time it holds it back (so the figures do not depend on
how often the sampler runs); a held-back trigger that is finally dropped also counts the
reason that ended it (usually ``lapsed``). See ``docs/surveys.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, Final, NamedTuple, cast

from agent.surveys.model import (
    EVENT_TRIGGER_TYPES,
    SCALES,
    Answer,
    Campaign,
    Prompt,
    Question,
    QuestionType,
    TriggerKind,
)

__all__ = [
    "ALWAYS_BAD_EVENT_TYPES",
    "DEFERRAL_REASONS",
    "DROP_REASONS",
    "MAX_TRIGGER_AGE_S",
    "PRIORITY",
    "SKIP_REASONS",
    "CampaignState",
    "FatigueSettings",
    "PlannerState",
    "SurveyPlanner",
    "sample_draw",
]

PRIORITY: Final[Mapping[str, int]] = {"event": 0, "control": 1, "pulse": 2}
"""Which due campaign is asked first (lower first): event, then control, then pulse."""
MAX_TRIGGER_AGE_S: Final = 72 * 3600.0
"""How long a due event trigger or snoozed prompt may wait for the rules to allow it before
it is dropped (``lapsed``): long enough to cover a night or a weekend, short enough that the
user still remembers the crash."""
ALWAYS_BAD_EVENT_TYPES: Final = frozenset({"app_crash", "app_hang", "system_crash"})
"""Event types that always exclude a device from a control sample (see the module doc)."""
_DURATION_FIELDS: Final = ("boot_duration_s", "logon_duration_s", "hang_duration_s")

SKIP_REASONS: Final[Mapping[str, str]] = {
    # dropped: counted once per trigger
    "not_sampled": "not in this period's sample (pulse, control) or event sample",
    "no_working_time": "pulse or control: the period has no working time to ask in",
    "control_excluded_bad_event": "control: the device had a bad event in the period",
    "opted_out": "the user said 'don't ask me this again' for this campaign",
    "campaign_inactive": "the campaign ended while the trigger waited",
    "snoozed": "the campaign is snoozed; its snoozed prompt comes back instead",
    "superseded": "event: a newer matching event replaced the waiting trigger",
    "lapsed": "the trigger waited too long (period over, or MAX_TRIGGER_AGE_S)",
    # held back: counted once per trigger and reason
    "open_prompt": "another prompt is open (or was chosen in the same evaluation)",
    "not_working_day": "not a working day in the device's local time",
    "quiet_hours": "inside quiet hours in the device's local time",
    "fatigue": "less than min_days_between_prompts since the last prompt seen",
    "dnd_after_prompt": "less than dnd_after_prompt_s since the last prompt closed",
    "busy": "the helper says the user is busy (full screen, in a call)",
}
"""Every reason a prompt is not asked, with its meaning (the keys of ``survey_skips``)."""
DROP_REASONS: Final = frozenset(
    {
        "not_sampled",
        "no_working_time",
        "control_excluded_bad_event",
        "opted_out",
        "campaign_inactive",
        "snoozed",
        "superseded",
        "lapsed",
    }
)
"""Reasons that end a trigger (each dropped trigger counts exactly one of these)."""
DEFERRAL_REASONS: Final = frozenset(SKIP_REASONS) - DROP_REASONS
"""Reasons that hold a trigger back for now (it may still be asked later)."""

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY: Final = 86400.0


def _number(raw: Mapping[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{key}: must be a number from {lo:g} to {hi:g}")
    if not math.isfinite(value):
        raise ValueError(f"{key}: must be a number from {lo:g} to {hi:g}")
    return float(value)


def _aware(value: Any) -> datetime | None:
    """An aware datetime (as UTC) from a datetime or an ISO 8601 string; None if not one."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return value.astimezone(UTC)


def _utc(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("now: must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(frozen=True)
class FatigueSettings:
    """The device-side rules that protect the user from too many questions.

    Built from the configuration's survey fatigue table by :meth:`from_config`. The gap
    after a prompt the user saw is ``max(min_days_between_prompts, dnd_after_prompt_s)``; the
    gap after a prompt closed unseen (expired) or snoozed is ``dnd_after_prompt_s``.
    """

    min_days_between_prompts: float = 7.0
    """At most one prompt seen per this many days, across all campaigns (0 turns it off)."""
    quiet_hours: tuple[time, time] = (time(18, 0), time(9, 0))
    """Local start and end of the quiet hours (may wrap midnight; equal: no quiet hours)."""
    working_days: frozenset[int] = frozenset(range(5))
    """Local weekdays on which prompts may be shown (Monday = 0)."""
    snooze_s: float = 86400.0
    """How long after "later" the snoozed prompt comes back."""
    dnd_after_prompt_s: float = 86400.0
    """Do-not-disturb after any prompt closes, whatever its outcome."""
    last_prompt_at: datetime | None = None
    """The server's last prompt for this user (on any device): counts as a prompt seen."""

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> FatigueSettings:
        """Validate the configuration table; ``ValueError`` names the offending key."""
        if not isinstance(raw, Mapping):
            raise ValueError("fatigue: must be a table")
        known = {
            "min_days_between_prompts",
            "quiet_hours",
            "working_days",
            "snooze_s",
            "dnd_after_prompt_s",
            "last_prompt_at",
        }
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown key")
        quiet = raw.get("quiet_hours", ["18:00", "09:00"])
        if (
            not isinstance(quiet, list | tuple)
            or len(quiet) != 2
            or not all(isinstance(q, str) and _HHMM.match(q) for q in quiet)
        ):
            raise ValueError('quiet_hours: must be two local times like ["18:00", "09:00"]')
        quiet_hours = cast(tuple[time, time], tuple(time(int(q[:2]), int(q[3:])) for q in quiet))
        days = raw.get("working_days", [0, 1, 2, 3, 4])
        if (
            not isinstance(days, list | tuple)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in days)
            or not all(0 <= d <= 6 for d in days)
            or len(set(days)) != len(days)
        ):
            raise ValueError("working_days: must list distinct weekdays from 0 (Monday) to 6")
        last = raw.get("last_prompt_at")
        last_prompt_at = None
        if last is not None:
            last_prompt_at = _aware(last) if isinstance(last, str) else None
            if last_prompt_at is None:
                raise ValueError("last_prompt_at: must be an ISO 8601 time with a UTC offset")
        return cls(
            min_days_between_prompts=_number(raw, "min_days_between_prompts", 0, 90, 7),
            quiet_hours=quiet_hours,
            working_days=frozenset(days),
            snooze_s=_number(raw, "snooze_s", 60, 30 * _DAY, _DAY),
            dnd_after_prompt_s=_number(raw, "dnd_after_prompt_s", 0, 30 * _DAY, _DAY),
            last_prompt_at=last_prompt_at,
        )


@dataclass
class CampaignState:
    """What the planner remembers about one campaign on this device."""

    opted_out: bool = False
    """The user said "don't ask me this again": the campaign never prompts here again."""
    snoozed_until: datetime | None = None
    """A snoozed prompt of this campaign comes back at this time (None: not snoozed)."""
    snoozed_event_id: str | None = None
    """The event that triggered the snoozed prompt (event campaigns)."""
    event_count: int = 0
    """Matching events since the last one that scheduled a trigger (for ``every_n``)."""
    pending_event_id: str | None = None
    """The event whose trigger waits (event campaigns; None: no trigger waits)."""
    pending_due: datetime | None = None
    """When that trigger falls due (the event's time plus ``delay_s``)."""
    period: int | None = None
    """The last pulse/control period whose sampling was decided."""
    period_due: datetime | None = None
    """When this period's sampled prompt falls due (None: not sampled, asked or dropped)."""
    skip_key: str | None = None
    """The trigger whose hold-back reasons :attr:`skip_reasons` lists (dedup of counts)."""
    skip_reasons: list[str] = field(default_factory=list)
    """Reasons already counted for that trigger."""


def _dt_out(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt_in(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = _aware(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError("bad time")
    return parsed


def _opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("bad string")
    return value


def _prompt_out(p: Prompt) -> dict[str, Any]:
    return {
        "prompt_id": p.prompt_id,
        "campaign_id": p.campaign_id,
        "question": {
            "type": p.question.type,
            "text": p.question.text,
            "follow_up": p.question.follow_up,
        },
        "trigger": p.trigger,
        "created_at": _dt_out(p.created_at),
        "expires_at": _dt_out(p.expires_at),
        "anonymous": p.anonymous,
        "trigger_event_id": p.trigger_event_id,
    }


def _prompt_in(raw: Any) -> Prompt:
    q = raw["question"]
    if q["type"] not in SCALES or raw["trigger"] not in PRIORITY:
        raise ValueError("bad prompt")
    created, expires = _dt_in(raw["created_at"]), _dt_in(raw["expires_at"])
    if created is None or expires is None or not isinstance(raw["anonymous"], bool):
        raise ValueError("bad prompt")
    return Prompt(
        prompt_id=str(raw["prompt_id"]),
        campaign_id=str(raw["campaign_id"]),
        question=Question(
            type=cast(QuestionType, q["type"]),
            text=str(q["text"]),
            follow_up=_opt_str(q.get("follow_up")),
        ),
        trigger=cast(TriggerKind, raw["trigger"]),
        created_at=created,
        expires_at=expires,
        anonymous=raw["anonymous"],
        trigger_event_id=_opt_str(raw.get("trigger_event_id")),
    )


def _campaign_in(raw: Any) -> CampaignState:
    period = raw.get("period")
    count = raw.get("event_count", 0)
    reasons = raw.get("skip_reasons", [])
    if (
        (period is not None and (not isinstance(period, int) or isinstance(period, bool)))
        or not isinstance(count, int)
        or isinstance(count, bool)
        or not isinstance(reasons, list)
        or not all(r in SKIP_REASONS for r in reasons)
        or not isinstance(raw.get("opted_out", False), bool)
    ):
        raise ValueError("bad campaign state")
    return CampaignState(
        opted_out=raw.get("opted_out", False),
        snoozed_until=_dt_in(raw.get("snoozed_until")),
        snoozed_event_id=_opt_str(raw.get("snoozed_event_id")),
        event_count=count,
        pending_event_id=_opt_str(raw.get("pending_event_id")),
        pending_due=_dt_in(raw.get("pending_due")),
        period=period,
        period_due=_dt_in(raw.get("period_due")),
        skip_key=_opt_str(raw.get("skip_key")),
        skip_reasons=list(reasons),
    )


@dataclass
class PlannerState:
    """Everything the planner must remember across agent restarts (JSON, small).

    :meth:`from_json` never fails: empty or corrupt text (or a newer version) gives a fresh
    state. That forgets the local fatigue clock and opt-outs, so the server's
    ``last_prompt_at`` is the backstop against asking again too soon.
    """

    VERSION: ClassVar[int] = 1

    last_seen_at: datetime | None = None
    """When the user last saw a prompt (answered, dismissed, snoozed, opted out, or shown
    and left to expire)."""
    last_closed_at: datetime | None = None
    """When the last prompt closed, whatever its outcome (for ``dnd_after_prompt_s``)."""
    last_bad_event_at: datetime | None = None
    """The time of the latest bad event (for control exclusion)."""
    open_prompts: dict[str, Prompt] = field(default_factory=dict)
    """Prompts handed out and not yet closed, by prompt id."""
    unreported_expired: list[Prompt] = field(default_factory=list)
    """Prompts the planner expired that :meth:`SurveyPlanner.expired` has not returned yet."""
    campaigns: dict[str, CampaignState] = field(default_factory=dict)
    """Per-campaign state, by campaign id (kept when a campaign leaves the configuration,
    so an opt-out survives a campaign briefly disappearing)."""
    skips: dict[str, dict[str, int]] = field(default_factory=dict)
    """Decisions not to ask since the last ``take_skips``: campaign id -> reason -> count."""

    def campaign(self, campaign_id: str) -> CampaignState:
        """The state of one campaign (created empty on first use)."""
        cs = self.campaigns.get(campaign_id)
        if cs is None:
            cs = self.campaigns[campaign_id] = CampaignState()
        return cs

    def to_json(self) -> str:
        """Serialize (compact, stable key order) for the spool's remembered values."""
        doc = {
            "v": self.VERSION,
            "last_seen_at": _dt_out(self.last_seen_at),
            "last_closed_at": _dt_out(self.last_closed_at),
            "last_bad_event_at": _dt_out(self.last_bad_event_at),
            "open_prompts": [_prompt_out(p) for p in self.open_prompts.values()],
            "unreported_expired": [_prompt_out(p) for p in self.unreported_expired],
            "campaigns": {
                cid: {
                    "opted_out": cs.opted_out,
                    "snoozed_until": _dt_out(cs.snoozed_until),
                    "snoozed_event_id": cs.snoozed_event_id,
                    "event_count": cs.event_count,
                    "pending_event_id": cs.pending_event_id,
                    "pending_due": _dt_out(cs.pending_due),
                    "period": cs.period,
                    "period_due": _dt_out(cs.period_due),
                    "skip_key": cs.skip_key,
                    "skip_reasons": cs.skip_reasons,
                }
                for cid, cs in self.campaigns.items()
            },
            "skips": self.skips,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | None) -> PlannerState:
        """Parse :meth:`to_json` output; anything empty, corrupt or unknown: a fresh state."""
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            if doc["v"] != cls.VERSION:
                return cls()
            opened = [_prompt_in(p) for p in doc["open_prompts"]]
            skips = {
                str(cid): {str(r): int(n) for r, n in counts.items() if r in SKIP_REASONS}
                for cid, counts in doc["skips"].items()
            }
            return cls(
                last_seen_at=_dt_in(doc["last_seen_at"]),
                last_closed_at=_dt_in(doc["last_closed_at"]),
                last_bad_event_at=_dt_in(doc["last_bad_event_at"]),
                open_prompts={p.prompt_id: p for p in opened},
                unreported_expired=[_prompt_in(p) for p in doc["unreported_expired"]],
                campaigns={str(c): _campaign_in(raw) for c, raw in doc["campaigns"].items()},
                skips=skips,
            )
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return cls()


def sample_draw(campaign_id: str, device_key: str, period: int, purpose: str = "sample") -> float:
    """A uniform number in [0, 1) fixed by (campaign, device, period, purpose).

    ``purpose="sample"`` decides membership (``< sample_rate``), ``"moment"`` the point in
    the period's working time. A keyed hash rather than a random generator: a restart, a
    re-run or the server (which knows the device keys) gets the same answer.
    """
    digest = hashlib.sha256(
        f"dexscope-survey\0{campaign_id}\0{device_key}\0{period}\0{purpose}".encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class _Due(NamedTuple):
    priority: int
    due_at: datetime
    campaign_id: str
    key: str
    event_id: str | None
    snooze: bool


def _local_windows(quiet: tuple[time, time]) -> list[tuple[time, time | None]]:
    """Working windows of a day (start, end; None = next midnight): quiet's complement."""
    start, end = quiet
    if start == end:
        return [(time(0), None)]
    if start > end:  # wraps midnight: 18:00-09:00 -> work 09:00-18:00
        return [(end, start)]
    windows: list[tuple[time, time | None]] = [(end, None)]
    if start > time(0):
        windows.insert(0, (time(0), start))
    return windows


class SurveyPlanner:
    """Decides which survey prompt, if any, to show now (see the module docstring).

    ``campaigns`` are those that apply to this device; ``state`` is mutated in place (the
    caller persists it with :meth:`PlannerState.to_json`); ``device_key`` keys the sampling
    draws (use a stable, non-secret device identifier); ``tz`` is the device's local time
    zone for quiet hours and working days. A configuration reload builds a new planner on
    the same state.
    """

    def __init__(
        self,
        campaigns: Iterable[Campaign],
        settings: FatigueSettings,
        state: PlannerState,
        *,
        device_key: str,
        tz: tzinfo,
    ) -> None:
        self._campaigns: dict[str, Campaign] = {}
        for c in campaigns:
            if c.id in self._campaigns:
                raise ValueError(f"campaigns: duplicate id {c.id!r}")
            self._campaigns[c.id] = c
        self.settings = settings
        self.state = state
        self.device_key = device_key
        self.tz = tz
        self._windows = _local_windows(settings.quiet_hours)
        self._moments: dict[tuple[str, int], datetime | None] = {}

    # -- events ------------------------------------------------------------------------

    def observe(self, event: Mapping[str, Any]) -> None:
        """Take note of an event the agent spooled (wire dict: type, event_id, ts, ...).

        Counts it toward matching event campaigns (``every_n``) and schedules a trigger at
        ``ts + delay_s``; remembers bad events for control exclusion. Events that are not
        of a trigger type, or have no timezone-aware ``ts``, are ignored.
        """
        etype = event.get("type")
        if etype not in EVENT_TRIGGER_TYPES:
            return
        ts = _aware(event.get("ts"))
        if ts is None:
            return
        event_id = str(event.get("event_id") or "") or str(
            uuid.UUID(bytes=hashlib.sha256(f"{etype}@{ts.isoformat()}".encode()).digest()[:16])
        )
        bad = etype in ALWAYS_BAD_EVENT_TYPES
        for c in self._campaigns.values():
            t = c.trigger
            if t.kind != "event" or etype not in t.event_types:
                continue
            if t.min_duration_s is not None and not self._long_enough(event, t.min_duration_s):
                continue
            bad = True
            if not self._active(c, ts):
                continue
            cs = self.state.campaign(c.id)
            cs.event_count = (cs.event_count + 1) % t.every_n
            if cs.event_count:
                continue
            if t.sample_rate < 1 and (
                sample_draw(c.id, self.device_key, 0, f"event:{event_id}") >= t.sample_rate
            ):
                self._count(c.id, "not_sampled")
                continue
            if cs.opted_out:
                self._count(c.id, "opted_out")
                continue
            if cs.pending_event_id is not None:
                self._drop(c.id, cs, f"e:{cs.pending_event_id}", "superseded")
            cs.pending_event_id = event_id
            cs.pending_due = ts + timedelta(seconds=t.delay_s)
        if bad:
            self.state.last_bad_event_at = _later(self.state.last_bad_event_at, ts)

    @staticmethod
    def _long_enough(event: Mapping[str, Any], threshold: float) -> bool:
        for name in _DURATION_FIELDS:
            value = event.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value >= threshold
        return False  # no duration: cannot tell it was slow

    # -- decisions ---------------------------------------------------------------------

    def due(self, now: datetime, *, busy: bool = False) -> list[Prompt]:
        """The prompt to show now: an empty list or exactly one (the highest priority).

        Closes expired prompts first (see :meth:`expired`). ``busy`` is the helper's "the
        user is in a full-screen app or a call": nothing is asked, ``busy`` is counted.
        """
        now = _utc(now)
        self._expire(now)
        candidates = [d for c in self._campaigns.values() if (d := self._instance(c, now))]
        if not candidates:
            return []
        candidates.sort()
        held: list[tuple[_Due, str]] = []
        for cand in candidates:
            reason = self._blocker(now, fatigue=not cand.snooze)
            if reason is None and busy:
                reason = "busy"
            if reason is None:  # ask this one; every other due trigger waits behind it
                prompt = self._ask(cand, now)
                for other in candidates:
                    if other is not cand:
                        self._defer(other, "open_prompt")
                return [prompt]
            held.append((cand, reason))
        for cand, reason in held:
            self._defer(cand, reason)
        return []

    def expired(self, now: datetime) -> list[Prompt]:
        """Close open prompts past their ``expires_at``; return every prompt expired since
        the previous call (also those :meth:`due` closed), so the caller reports each once.

        An expired prompt the helper never showed does not count as seen (no fatigue gap),
        but ``dnd_after_prompt_s`` runs from its expiry.
        """
        self._expire(_utc(now))
        out = list(self.state.unreported_expired)
        self.state.unreported_expired.clear()
        return out

    def record(self, answer: Answer, now: datetime) -> None:
        """Apply what became of a prompt (from the helper): close it and update fatigue.

        ``answered``, ``dismissed``, ``snoozed`` and ``opted_out`` count as seen (at
        ``shown_at``, else ``answered_at``, else ``now``); ``expired`` counts as seen only
        when the helper reports ``shown_at``. ``snoozed`` brings the prompt back
        ``snooze_s`` after ``now``; ``opted_out`` stops the campaign here for good. An answer
        to a prompt already closed (expired and reported, or recorded before) still updates
        fatigue and opt-out, but does not snooze: recording the same answer twice is
        harmless.
        """
        now = _utc(now)
        opened = self.state.open_prompts.pop(answer.prompt_id, None)
        if opened is None:  # it may have expired meanwhile: do not report it as expired
            for p in self.state.unreported_expired:
                if p.prompt_id == answer.prompt_id:
                    opened = p
            self.state.unreported_expired = [
                p for p in self.state.unreported_expired if p.prompt_id != answer.prompt_id
            ]
        campaign_id = opened.campaign_id if opened is not None else answer.campaign_id
        cs = self.state.campaign(campaign_id)
        shown = _aware(answer.shown_at) or _aware(answer.answered_at)
        if answer.outcome != "expired" or answer.shown_at is not None:
            self.state.last_seen_at = _later(self.state.last_seen_at, shown or now)
        if opened is not None:
            self.state.last_closed_at = _later(self.state.last_closed_at, now)
        if answer.outcome == "snoozed" and opened is not None and not cs.opted_out:
            if cs.snoozed_until is not None:
                self._drop(campaign_id, cs, self._snooze_key(cs), "superseded")
            cs.snoozed_until = now + timedelta(seconds=self.settings.snooze_s)
            cs.snoozed_event_id = opened.trigger_event_id if opened is not None else None
        elif answer.outcome == "opted_out":
            cs.opted_out = True
            if cs.snoozed_until is not None:
                self._drop(campaign_id, cs, self._snooze_key(cs), "opted_out")
            if cs.pending_due is not None:
                self._drop(campaign_id, cs, f"e:{cs.pending_event_id}", "opted_out")
            if cs.period_due is not None:
                self._drop(campaign_id, cs, f"p:{cs.period}", "opted_out")

    def open_prompts(self) -> list[Prompt]:
        """The prompts handed out and not yet closed (at most one in normal operation)."""
        return list(self.state.open_prompts.values())

    def take_skips(self) -> dict[str, int]:
        """Decisions not to ask since the previous take, by reason (``survey_skips``); resets."""
        totals: dict[str, int] = {}
        for counts in self.state.skips.values():
            for reason, n in counts.items():
                totals[reason] = totals.get(reason, 0) + n
        self.state.skips.clear()
        return dict(sorted(totals.items()))

    def take_skips_by_campaign(self) -> dict[str, dict[str, int]]:
        """The same counts per campaign id (campaign id -> reason -> count); resets."""
        out = {cid: dict(counts) for cid, counts in self.state.skips.items()}
        self.state.skips.clear()
        return out

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The earliest time after ``now`` at which :meth:`due` could ask, count or expire
        anything, assuming no new :meth:`observe` or :meth:`record` (``now`` itself if it
        could right now, e.g. only ``busy`` held it back; None: nothing will ever happen).

        Call it after :meth:`due`; a sampler may sleep until then. A superset of the real
        change points: waking early is harmless.
        """
        now = _utc(now)
        times: list[datetime] = [p.expires_at for p in self.state.open_prompts.values()]
        waiting: list[bool] = []  # due triggers held back: does fatigue apply to each?
        max_age = timedelta(seconds=MAX_TRIGGER_AGE_S)
        for c in self._campaigns.values():
            cs = self.state.campaign(c.id)
            if now < c.starts_at:
                times.append(c.starts_at)
                continue
            if c.ends_at is not None and now >= c.ends_at:
                continue
            triggers = [(cs.snoozed_until, True, True), (cs.pending_due, False, True)]
            if c.trigger.kind != "event":
                triggers.append((cs.period_due, False, False))
                nxt = self._period_start(c, self._period_index(c, now) + 1)
                if c.ends_at is None or nxt < c.ends_at:
                    times.append(nxt)  # the period's end: sampling, lapse
                control_waiting = [
                    at for at in (cs.period_due, cs.snoozed_until) if at is not None and at <= now
                ]
                if c.trigger.kind == "control" and control_waiting and self._had_bad_event(c, now):
                    return now  # a bad event arrived while the control prompt waited
            for at, snooze, ages in triggers:
                if at is None:
                    continue
                if c.ends_at is not None:
                    times.append(c.ends_at)
                if at > now:
                    times.append(at)
                else:
                    waiting.append(not snooze)
                    if ages:
                        times.append(at + max_age)
        if waiting:
            if any(self._blocker(now, fatigue=f) is None for f in waiting):
                return now
            times.extend(self._gate_changes(now))
        future = [t for t in times if t > now]
        return min(future) if future else None

    # -- internals ---------------------------------------------------------------------

    def _active(self, c: Campaign, at: datetime) -> bool:
        return c.starts_at <= at and (c.ends_at is None or at < c.ends_at)

    def _period_index(self, c: Campaign, now: datetime) -> int:
        return (now - c.starts_at) // timedelta(days=c.trigger.period_days)

    def _period_start(self, c: Campaign, k: int) -> datetime:
        return (c.starts_at + k * timedelta(days=c.trigger.period_days)).astimezone(UTC)

    @staticmethod
    def _snooze_key(cs: CampaignState) -> str:
        return f"s:{_dt_out(cs.snoozed_until)}"

    def _count(self, campaign_id: str, reason: str) -> None:
        counts = self.state.skips.setdefault(campaign_id, {})
        counts[reason] = counts.get(reason, 0) + 1

    def _drop(self, campaign_id: str, cs: CampaignState, key: str, reason: str) -> None:
        """End one trigger without asking: count the reason, clear the trigger."""
        self._count(campaign_id, reason)
        if cs.skip_key == key:
            cs.skip_key, cs.skip_reasons = None, []
        if key.startswith("s:"):
            cs.snoozed_until = cs.snoozed_event_id = None
        elif key.startswith("e:"):
            cs.pending_event_id = cs.pending_due = None
        else:
            cs.period_due = None

    def _defer(self, cand: _Due, reason: str) -> None:
        """Hold a due trigger back: count each reason once per trigger."""
        cs = self.state.campaign(cand.campaign_id)
        if cs.skip_key != cand.key:
            cs.skip_key, cs.skip_reasons = cand.key, []
        if reason not in cs.skip_reasons:
            cs.skip_reasons.append(reason)
            self._count(cand.campaign_id, reason)

    def _instance(self, c: Campaign, now: datetime) -> _Due | None:
        """Update one campaign's triggers for ``now``; return its due trigger, if any."""
        cs = self.state.campaign(c.id)
        t = c.trigger
        ended = c.ends_at is not None and now >= c.ends_at
        max_age = timedelta(seconds=MAX_TRIGGER_AGE_S)
        if cs.snoozed_until is not None:
            key = self._snooze_key(cs)
            if ended:
                self._drop(c.id, cs, key, "campaign_inactive")
            elif now >= cs.snoozed_until + max_age:
                self._drop(c.id, cs, key, "lapsed")
            elif now >= cs.snoozed_until and t.kind == "control" and self._had_bad_event(c, now):
                self._drop(c.id, cs, key, "control_excluded_bad_event")
        if cs.pending_due is not None:
            key = f"e:{cs.pending_event_id}"
            if ended:
                self._drop(c.id, cs, key, "campaign_inactive")
            elif now >= cs.pending_due + max_age:
                self._drop(c.id, cs, key, "lapsed")
            elif now >= cs.pending_due and cs.snoozed_until is not None:
                self._drop(c.id, cs, key, "snoozed")
        if t.kind != "event" and now >= c.starts_at:
            k = self._period_index(c, now)
            if cs.period != k:
                if cs.period_due is not None:
                    self._drop(c.id, cs, f"p:{cs.period}", "lapsed")
                cs.period, cs.period_due = k, None
                if not ended:
                    if sample_draw(c.id, self.device_key, k) >= t.sample_rate:
                        self._count(c.id, "not_sampled")
                    elif cs.opted_out:
                        self._count(c.id, "opted_out")
                    else:
                        cs.period_due = self._moment(c, k)
                        if cs.period_due is None:
                            self._count(c.id, "no_working_time")
            if cs.period_due is not None:
                key = f"p:{k}"
                if ended:
                    self._drop(c.id, cs, key, "campaign_inactive")
                elif now >= cs.period_due and cs.snoozed_until is not None:
                    self._drop(c.id, cs, key, "snoozed")
                elif now >= cs.period_due and t.kind == "control" and self._had_bad_event(c, now):
                    self._drop(c.id, cs, key, "control_excluded_bad_event")
        priority = PRIORITY[t.kind]
        if cs.snoozed_until is not None and now >= cs.snoozed_until:
            key = self._snooze_key(cs)
            return _Due(priority, cs.snoozed_until, c.id, key, cs.snoozed_event_id, True)
        if cs.pending_due is not None and now >= cs.pending_due:
            key = f"e:{cs.pending_event_id}"
            return _Due(priority, cs.pending_due, c.id, key, cs.pending_event_id, False)
        if cs.period_due is not None and now >= cs.period_due:
            return _Due(priority, cs.period_due, c.id, f"p:{cs.period}", None, False)
        return None

    def _had_bad_event(self, c: Campaign, now: datetime) -> bool:
        last = self.state.last_bad_event_at
        return last is not None and last >= now - timedelta(days=c.trigger.period_days)

    def _blocker(self, now: datetime, *, fatigue: bool) -> str | None:
        """The first device-wide rule that forbids asking now (None: none does)."""
        if self.state.open_prompts:
            return "open_prompt"
        local = now.astimezone(self.tz)
        if local.weekday() not in self.settings.working_days:
            return "not_working_day"
        if self._in_quiet(local.time()):
            return "quiet_hours"
        seen = _later(self.state.last_seen_at, self.settings.last_prompt_at)
        gap = timedelta(days=self.settings.min_days_between_prompts)
        if fatigue and seen is not None and now < seen + gap:
            return "fatigue"
        closed = _later(seen, self.state.last_closed_at)
        if closed is not None and now < closed + timedelta(
            seconds=self.settings.dnd_after_prompt_s
        ):
            return "dnd_after_prompt"
        return None

    def _in_quiet(self, local: time) -> bool:
        start, end = self.settings.quiet_hours
        local = local.replace(tzinfo=None)
        if start == end:
            return False
        if start > end:
            return local >= start or local < end
        return start <= local < end

    def _gate_changes(self, now: datetime) -> list[datetime]:
        """Times after ``now`` at which a device-wide rule may start or stop holding back."""
        out: list[datetime] = []
        seen = _later(self.state.last_seen_at, self.settings.last_prompt_at)
        if seen is not None:
            out.append(seen + timedelta(days=self.settings.min_days_between_prompts))
        closed = _later(seen, self.state.last_closed_at)
        if closed is not None:
            out.append(closed + timedelta(seconds=self.settings.dnd_after_prompt_s))
        day = now.astimezone(self.tz).date()
        for d in (day, day + timedelta(days=1), day + timedelta(days=2)):
            for t in (*self.settings.quiet_hours, time(0)):
                out.append(self._local(d, t))
        return [t for t in out if t > now]

    def _local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(UTC)

    def _moment(self, c: Campaign, k: int) -> datetime | None:
        """The moment in period ``k``'s working time at which this device is asked."""
        if (c.id, k) in self._moments:
            return self._moments[(c.id, k)]
        start = self._period_start(c, k)
        end = start + timedelta(days=c.trigger.period_days)
        if c.ends_at is not None:
            end = min(end, c.ends_at.astimezone(UTC))
        spans: list[tuple[datetime, datetime]] = []
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            if day.weekday() in self.settings.working_days:
                for a, b in self._windows:
                    lo = self._local(day, a)
                    hi = (
                        self._local(day + timedelta(days=1), time(0))
                        if b is None
                        else self._local(day, b)
                    )
                    lo, hi = max(lo, start), min(hi, end)
                    if lo < hi:
                        spans.append((lo, hi))
            day += timedelta(days=1)
        total = sum((hi - lo for lo, hi in spans), timedelta())
        moment: datetime | None = None
        if total > timedelta():
            offset = total * sample_draw(c.id, self.device_key, k, "moment")
            for lo, hi in spans:
                if offset < hi - lo:
                    moment = lo + offset
                    break
                offset -= hi - lo
            else:  # rounding: the very end of the last span
                moment = spans[-1][1] - timedelta(microseconds=1)
        self._moments[(c.id, k)] = moment
        return moment

    def _ask(self, cand: _Due, now: datetime) -> Prompt:
        """Create the prompt for a due trigger and clear the trigger."""
        c = self._campaigns[cand.campaign_id]
        cs = self.state.campaign(c.id)
        digest = hashlib.sha256(
            f"{self.device_key}\0{c.id}\0{cand.key}\0{now.isoformat()}".encode()
        ).digest()
        prompt = Prompt(
            prompt_id=str(uuid.UUID(bytes=digest[:16], version=4)),
            campaign_id=c.id,
            question=c.question,
            trigger=c.trigger.kind,
            created_at=now,
            expires_at=now + timedelta(seconds=c.expires_after_s),
            anonymous=c.anonymous,
            trigger_event_id=cand.event_id,
        )
        if cand.snooze:
            cs.snoozed_until = cs.snoozed_event_id = None
        elif cand.key.startswith("e:"):
            cs.pending_event_id = cs.pending_due = None
        else:
            cs.period_due = None
        if cs.skip_key == cand.key:
            cs.skip_key, cs.skip_reasons = None, []
        self.state.open_prompts[prompt.prompt_id] = prompt
        return prompt

    def _expire(self, now: datetime) -> None:
        for pid, p in list(self.state.open_prompts.items()):
            if now >= p.expires_at:
                del self.state.open_prompts[pid]
                self.state.unreported_expired.append(p)
                self.state.last_closed_at = _later(self.state.last_closed_at, p.expires_at)
