"""The survey planner: triggers, sampling and fatigue rules, with a controlled clock.

Unit tests pin each rule with exact times; the simulations at the end run a fleet for weeks
(every device stepped on a 15-minute clock) and check the limits and the sample rates.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import time as wallclock
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.surveys.model import Answer, Campaign, Prompt, parse_campaign
from agent.surveys.policy import (
    DEFERRAL_REASONS,
    DROP_REASONS,
    MAX_TRIGGER_AGE_S,
    SKIP_REASONS,
    FatigueSettings,
    PlannerState,
    SurveyPlanner,
    sample_draw,
)

CET = timezone(timedelta(hours=1))  # a Europe-like fixed +01:00 zone
MON = datetime(2026, 11, 2, tzinfo=CET)  # Monday 2 November 2026, 00:00 local
H = timedelta(hours=1)
D = timedelta(days=1)


def at(day: int, hh: int, mm: int = 0, tz: tzinfo = CET) -> datetime:
    """Local time ``day`` days after Monday 2 November 2026."""
    return datetime(2026, 11, 2, hh, mm, tzinfo=tz) + day * D


def campaign(cid: str = "ev", kind: str = "event", **trigger: Any) -> Campaign:
    extra: dict[str, Any] = {
        k: trigger.pop(k) for k in ("starts_at", "ends_at", "expires_after_s") if k in trigger
    }
    if kind == "event":
        trigger.setdefault("event_types", ["app_crash"])
    raw: dict[str, Any] = {
        "id": cid,
        "name": cid,
        "question": {"type": "stars", "text": "How was it?"},
        "trigger": {"kind": kind, **trigger},
        "starts_at": "2026-10-01T00:00:00Z",
        **extra,
    }
    return parse_campaign(raw)


def planner(
    *campaigns: Campaign,
    state: PlannerState | None = None,
    device: str = "dev-1",
    tz: tzinfo = CET,
    **fatigue: Any,
) -> SurveyPlanner:
    return SurveyPlanner(
        campaigns or (campaign(),),
        FatigueSettings.from_config(fatigue),
        state or PlannerState(),
        device_key=device,
        tz=tz,
    )


def crash(ts: datetime, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"type": "app_crash", "event_id": event_id or str(uuid.uuid4()), "ts": ts, **fields}


def answer(p: Prompt, outcome: str = "answered", shown: bool = True) -> Answer:
    return Answer(
        p.prompt_id,
        p.campaign_id,
        outcome,  # type: ignore[arg-type]
        shown_at=p.created_at if shown else None,
        value=4 if outcome == "answered" else None,
    )


def ask(pl: SurveyPlanner, now: datetime, busy: bool = False) -> Prompt:
    prompts = pl.due(now, busy=busy)
    assert len(prompts) == 1, (now, prompts, pl.state.skips)
    return prompts[0]


# -- settings --------------------------------------------------------------------------


def test_fatigue_defaults() -> None:
    s = FatigueSettings.from_config({})
    assert s == FatigueSettings()
    assert s.min_days_between_prompts == 7
    assert s.quiet_hours == (time(18), time(9))
    assert s.working_days == frozenset({0, 1, 2, 3, 4})
    assert s.snooze_s == s.dnd_after_prompt_s == 86400
    assert s.last_prompt_at is None


def test_fatigue_from_config_accepts_every_key() -> None:
    s = FatigueSettings.from_config(
        {
            "min_days_between_prompts": 3.5,
            "quiet_hours": ["22:30", "07:15"],
            "working_days": [6, 0],
            "snooze_s": 3600,
            "dnd_after_prompt_s": 0,
            "last_prompt_at": "2026-11-01T10:00:00+01:00",
        }
    )
    assert s.min_days_between_prompts == 3.5
    assert s.quiet_hours == (time(22, 30), time(7, 15))
    assert s.working_days == frozenset({0, 6})
    assert s.last_prompt_at == datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"min_days_between_prompts": 91}, "min_days_between_prompts"),
        ({"min_days_between_prompts": -1}, "min_days_between_prompts"),
        ({"min_days_between_prompts": True}, "min_days_between_prompts"),
        ({"min_days_between_prompts": float("nan")}, "min_days_between_prompts"),
        ({"quiet_hours": ["18:00"]}, "quiet_hours"),
        ({"quiet_hours": ["24:00", "09:00"]}, "quiet_hours"),
        ({"quiet_hours": "18:00-09:00"}, "quiet_hours"),
        ({"working_days": []}, "working_days"),
        ({"working_days": [7]}, "working_days"),
        ({"working_days": [1, 1]}, "working_days"),
        ({"snooze_s": 10}, "snooze_s"),
        ({"dnd_after_prompt_s": "1d"}, "dnd_after_prompt_s"),
        ({"last_prompt_at": "2026-11-01T10:00:00"}, "last_prompt_at"),
        ({"last_prompt_at": 12}, "last_prompt_at"),
        ({"max_prompts": 1}, "max_prompts"),
    ],
)
def test_fatigue_from_config_names_the_bad_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}: "):
        FatigueSettings.from_config(raw)


def test_skip_reasons_are_partitioned() -> None:
    assert set(SKIP_REASONS) == DROP_REASONS | DEFERRAL_REASONS
    assert not DROP_REASONS & DEFERRAL_REASONS


# -- event triggers --------------------------------------------------------------------


def test_event_trigger_after_delay_with_prompt_fields() -> None:
    c = campaign(delay_s=600, expires_after_s=3600)
    pl = planner(c)
    pl.observe(crash(at(1, 10), "e-1"))
    assert pl.due(at(1, 10, 9)) == []
    p = ask(pl, at(1, 10, 10))
    assert (p.campaign_id, p.trigger, p.trigger_event_id) == ("ev", "event", "e-1")
    assert p.question == c.question
    assert p.created_at == at(1, 10, 10) and p.expires_at == at(1, 11, 10)
    assert uuid.UUID(p.prompt_id).version == 4
    assert pl.open_prompts() == [p]
    assert pl.take_skips() == {}


def test_event_ts_may_be_an_iso_string_and_bad_events_are_ignored() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe({"type": "app_crash", "event_id": "x", "ts": "2026-11-03T09:00:00Z"})
    pl.observe({"type": "app_crash", "event_id": "y", "ts": "yesterday"})
    pl.observe({"type": "app_crash", "event_id": "z", "ts": datetime(2026, 11, 3, 9)})
    pl.observe({"type": "resource_sample", "event_id": "w", "ts": at(1, 9)})
    assert ask(pl, at(1, 11)).trigger_event_id == "x"


def test_every_n_counts_matching_events() -> None:
    pl = planner(campaign(every_n=3, delay_s=0))
    for i in range(2):
        pl.observe(crash(at(1, 10, i), f"e-{i}"))
    pl.observe({"type": "app_hang", "event_id": "h", "ts": at(1, 10, 3)})  # not a match
    assert pl.due(at(1, 11)) == []
    pl.observe(crash(at(1, 11, 30), "e-2"))
    assert ask(pl, at(1, 11, 30)).trigger_event_id == "e-2"


@pytest.mark.parametrize(
    ("event", "asked"),
    [
        ({"type": "boot", "boot_duration_s": 150.0}, True),
        ({"type": "boot", "boot_duration_s": 120}, True),
        ({"type": "boot", "boot_duration_s": 119.9}, False),
        ({"type": "boot"}, False),  # no duration: cannot tell it was slow
        ({"type": "boot", "boot_duration_s": True}, False),
        ({"type": "logon", "logon_duration_s": 300}, True),
        ({"type": "app_hang", "hang_duration_s": 200}, True),
        ({"type": "app_hang", "hang_duration_s": 20}, False),
    ],
)
def test_min_duration_s(event: dict[str, Any], asked: bool) -> None:
    c = campaign(event_types=["boot", "logon", "app_hang"], min_duration_s=120, delay_s=0)
    pl = planner(c)
    pl.observe({**event, "event_id": "e", "ts": at(1, 10)})
    assert len(pl.due(at(1, 10, 1))) == int(asked)


def test_event_sample_rate_keeps_a_share_of_the_triggers() -> None:
    pl = planner(campaign(delay_s=0, sample_rate=0.25), min_days_between_prompts=0)
    for i in range(2000):
        pl.observe(crash(at(1, 10), f"e-{i}"))
    skips = pl.take_skips()
    kept = 2000 - skips["not_sampled"]
    assert skips["superseded"] == kept - 1
    lo, hi = _bounds(2000, 0.25)
    assert lo <= kept <= hi


def test_an_event_without_id_gets_a_stable_uuid() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe({"type": "app_crash", "ts": at(1, 10)})
    event_id = ask(pl, at(1, 10)).trigger_event_id
    assert event_id is not None and uuid.UUID(event_id)
    again = planner(campaign(delay_s=0))
    again.observe({"type": "app_crash", "ts": at(1, 10)})
    assert ask(again, at(1, 10)).trigger_event_id == event_id


def test_newer_event_supersedes_a_waiting_trigger() -> None:
    pl = planner(campaign(delay_s=3600))
    pl.observe(crash(at(1, 10), "old"))
    pl.observe(crash(at(1, 10, 30), "new"))
    assert pl.due(at(1, 11, 10)) == []
    assert pl.take_skips() == {"superseded": 1}
    assert ask(pl, at(1, 11, 30)).trigger_event_id == "new"


def test_events_outside_the_campaign_window_are_not_counted() -> None:
    c = campaign(starts_at="2026-11-03T00:00:00Z", ends_at="2026-11-04T00:00:00Z", delay_s=0)
    pl = planner(c)
    pl.observe(crash(at(0, 10)))  # before starts_at
    pl.observe(crash(at(3, 10)))  # after ends_at
    assert pl.due(at(3, 10, 5)) == []
    assert pl.take_skips() == {}


def test_trigger_waiting_when_the_campaign_ends_is_dropped() -> None:
    c = campaign(ends_at="2026-11-02T20:00:00+01:00", delay_s=0)
    pl = planner(c)
    pl.observe(crash(at(0, 19)))  # held back by quiet hours, then the campaign ends
    assert pl.due(at(0, 19, 15)) == []
    assert pl.due(at(1, 9)) == []
    assert pl.take_skips() == {"quiet_hours": 1, "campaign_inactive": 1}


# -- quiet hours, working days, time zones ----------------------------------------------


def test_quiet_hours_wrap_midnight_in_local_time() -> None:
    pl = planner(campaign(delay_s=300))
    pl.observe(crash(at(1, 17, 56)))  # due 18:01 local: quiet
    for now in (at(1, 18, 1), at(1, 23, 59), at(2, 0, 0), at(2, 8, 59)):
        assert pl.due(now) == []
    assert pl.take_skips() == {"quiet_hours": 1}  # once per trigger, not per evaluation
    p = ask(pl, at(2, 9, 0))
    assert p.created_at == datetime(2026, 11, 4, 8, tzinfo=UTC)  # 09:00 at +01:00


def test_quiet_hours_without_wrap_and_none() -> None:
    pl = planner(campaign(delay_s=0), quiet_hours=["12:00", "13:00"])
    pl.observe(crash(at(1, 12, 30)))
    assert pl.due(at(1, 12, 59)) == []
    assert ask(pl, at(1, 13)).created_at == at(1, 13)
    pl = planner(campaign(delay_s=0), quiet_hours=["00:00", "00:00"])  # no quiet hours
    pl.observe(crash(at(1, 3)))
    assert ask(pl, at(1, 3)).created_at == at(1, 3)


def test_the_same_utc_instant_differs_by_time_zone() -> None:
    now = datetime(2026, 11, 3, 17, 30, tzinfo=UTC)
    for tz, expected in ((CET, 0), (timezone(timedelta(hours=-5)), 1)):
        pl = planner(campaign(delay_s=0), tz=tz)
        pl.observe(crash(now - H))
        assert len(pl.due(now)) == expected  # 18:30 in CET (quiet), 12:30 at -05:00


def test_weekend_defers_to_monday_morning() -> None:
    pl = planner(campaign(delay_s=300))
    pl.observe(crash(at(5, 11)))  # Saturday
    assert pl.due(at(5, 11, 5)) == []
    assert pl.due(at(6, 12)) == []  # Sunday
    assert pl.take_skips() == {"not_working_day": 1}
    assert ask(pl, at(7, 9)).created_at == at(7, 9)  # Monday 09:00


def test_custom_working_days() -> None:
    pl = planner(campaign(delay_s=0), working_days=[5, 6])
    pl.observe(crash(at(3, 10)))  # Thursday
    assert pl.due(at(3, 10)) == []
    assert ask(pl, at(5, 9)).created_at == at(5, 9)


def test_a_trigger_held_back_too_long_lapses() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe(crash(at(4, 17, 59)))  # Friday 17:59
    assert pl.due(at(4, 18)) == []  # quiet
    assert pl.due(at(7, 18)) == []  # 72 h + 1 min later: too old to ask about
    assert MAX_TRIGGER_AGE_S == 72 * 3600
    assert pl.take_skips() == {"quiet_hours": 1, "lapsed": 1}


# -- fatigue -----------------------------------------------------------------------------


def test_one_prompt_per_period_across_campaigns() -> None:
    a, b = campaign("a", delay_s=0), campaign("b", delay_s=0, event_types=["app_hang"])
    pl = planner(a, b)
    pl.observe(crash(at(0, 10)))
    p = ask(pl, at(0, 10))
    pl.record(answer(p), at(0, 10, 5))
    pl.observe({"type": "app_hang", "event_id": "h", "ts": at(1, 10)})
    assert pl.due(at(1, 10)) == []  # dnd and fatigue: the first failing rule is counted
    assert pl.take_skips() == {"fatigue": 1}
    pl.observe({"type": "app_hang", "event_id": "h2", "ts": at(6, 23)})  # Sun 23:00
    assert pl.due(at(7, 9, 59)) == []  # Monday, 6 days 23 h 59 min after being shown
    assert ask(pl, at(7, 10)).campaign_id == "b"


def test_min_days_zero_leaves_the_dnd_window() -> None:
    pl = planner(campaign(delay_s=0), min_days_between_prompts=0, dnd_after_prompt_s=3600)
    pl.observe(crash(at(1, 10)))
    pl.record(answer(ask(pl, at(1, 10))), at(1, 10, 10))
    pl.observe(crash(at(1, 10, 30)))
    assert pl.due(at(1, 11, 9)) == []
    assert pl.take_skips() == {"dnd_after_prompt": 1}
    assert ask(pl, at(1, 11, 10)).created_at == at(1, 11, 10)


def test_server_last_prompt_at_is_respected() -> None:
    pl = planner(campaign(delay_s=0), last_prompt_at="2026-11-01T12:00:00+01:00")
    pl.observe(crash(at(1, 10)))
    assert pl.due(at(1, 10)) == []
    assert pl.take_skips() == {"fatigue": 1}
    pl.observe(crash(at(6, 12)))
    assert pl.due(at(6, 12)) == []  # Sunday
    pl.observe(crash(at(7, 11)))
    assert ask(pl, at(7, 11)).created_at == at(7, 11)


def test_busy_defers_without_losing_the_prompt() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe(crash(at(1, 10)))
    assert pl.due(at(1, 10), busy=True) == []
    assert pl.due(at(1, 10, 15), busy=True) == []
    assert pl.take_skips() == {"busy": 1}
    assert ask(pl, at(1, 10, 30)).created_at == at(1, 10, 30)


def test_open_prompt_blocks_and_priority_is_event_control_pulse() -> None:
    start = "2026-11-02T00:00:00+01:00"
    pulse = campaign("pulse", "pulse", sample_rate=1.0, starts_at=start)
    control = campaign("control", "control", sample_rate=1.0, starts_at=start)
    event = campaign("ev", delay_s=0, starts_at=start)
    rules: dict[str, Any] = {"min_days_between_prompts": 0, "dnd_after_prompt_s": 0}
    late = at(4, 17, 30)  # every moment of this week has passed

    def run(pl: SurveyPlanner) -> list[str]:
        kinds: list[str] = []
        for minutes in range(0, 30, 10):
            prompts = pl.due(late + timedelta(minutes=minutes))
            kinds += [p.trigger for p in prompts]
            for p in prompts:
                pl.record(answer(p, "dismissed"), late + timedelta(minutes=minutes))
        return kinds

    pl = planner(pulse, control, event, **rules)
    pl.observe({"type": "boot", "event_id": "b", "ts": at(0, 8)})  # a normal boot: not bad
    assert run(pl) == ["control", "pulse"]
    assert pl.take_skips_by_campaign() == {"pulse": {"open_prompt": 1}}
    pl = planner(pulse, event, **rules)
    pl.observe(crash(late))
    assert run(pl) == ["event", "pulse"]
    assert pl.take_skips_by_campaign() == {"pulse": {"open_prompt": 1}}


def test_control_excludes_a_device_with_a_bad_event() -> None:
    start = "2026-11-02T00:00:00+01:00"
    control = campaign("control", "control", sample_rate=1.0, starts_at=start)
    slow = campaign("boot", event_types=["boot"], min_duration_s=120, starts_at=start)
    pl = planner(control, slow)
    pl.observe({"type": "boot", "event_id": "b", "ts": at(0, 8), "boot_duration_s": 200})
    prompts = [p for h in range(9, 18) for m in (0, 30) for p in pl.due(at(0, h, m))]
    assert [p.campaign_id for p in prompts] == ["boot"]
    pl.record(answer(prompts[0]), at(0, 9))
    for day in range(1, 7):
        assert pl.due(at(day, 17, 59)) == []
    assert pl.take_skips_by_campaign()["control"] == {"control_excluded_bad_event": 1}
    # next week the bad boot is more than a period old: the device is a control again
    assert ask(pl, at(11, 17, 59)).campaign_id == "control"


def test_control_exclusion_window_is_the_period_before_the_moment() -> None:
    start = "2026-11-02T00:00:00+01:00"
    control = campaign("control", "control", sample_rate=1.0, starts_at=start)
    pl = planner(control, device="dev-7")
    pl.observe({"type": "system_crash", "event_id": "s", "ts": at(-6, 12)})  # last week
    pl.due(at(0, 0))  # the moment is decided on the first evaluation
    moment = pl.state.campaigns["control"].period_due
    assert moment is not None
    within = moment - at(-6, 12) <= 7 * D
    assert len(pl.due(at(4, 18) - timedelta(seconds=1))) == int(not within)


# -- pulse sampling ---------------------------------------------------------------------


def test_pulse_moment_is_deterministic_and_inside_working_hours() -> None:
    start = "2026-11-02T00:00:00+01:00"
    pulse = campaign("pulse", "pulse", sample_rate=1.0, starts_at=start)
    moments = []
    for i in range(300):
        pl = planner(pulse, device=f"dev-{i}")
        assert pl.due(at(0, 0)) == []
        due = pl.state.campaigns["pulse"].period_due
        assert due is not None
        local = due.astimezone(CET)
        assert local.weekday() < 5 and time(9) <= local.time() < time(18)
        assert MON <= due < MON + 7 * D
        again = planner(pulse, device=f"dev-{i}")
        again.due(at(0, 0))
        assert again.state.campaigns["pulse"].period_due == due
        p = ask(pl, due)
        assert p.created_at == due and p.trigger == "pulse"
        moments.append(local)
    by_day = Counter(m.weekday() for m in moments)
    by_hour = Counter(m.hour for m in moments)
    assert set(by_day) == set(range(5)) and set(by_hour) == set(range(9, 18))
    assert max(by_day.values()) < 100  # 60 expected per day


def test_pulse_sampling_is_counted_once_per_period() -> None:
    start = "2026-11-02T00:00:00+01:00"
    pulse = campaign("pulse", "pulse", sample_rate=0.0, starts_at=start)
    pl = planner(pulse)
    for minutes in range(0, 14 * 24 * 60, 15):
        assert pl.due(MON + timedelta(minutes=minutes)) == []
    assert pl.take_skips() == {"not_sampled": 2}


def test_sample_draw_is_uniform_and_keyed() -> None:
    draws = [sample_draw("c", f"dev-{i}", 3) for i in range(20000)]
    assert all(0 <= d < 1 for d in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.01
    assert sample_draw("c", "dev-1", 3) == sample_draw("c", "dev-1", 3)
    assert sample_draw("c", "dev-1", 3) != sample_draw("c", "dev-1", 4)
    assert sample_draw("c", "dev-1", 3) != sample_draw("c", "dev-1", 3, "moment")


def test_pulse_moment_follows_dst_in_a_named_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    start = "2026-10-19T00:00:00+02:00"  # the week of 25 October 2026 switches to +01:00
    pulse = campaign("pulse", "pulse", sample_rate=1.0, starts_at=start, period_days=14)
    for i in range(200):
        pl = planner(pulse, device=f"d{i}", tz=paris)
        pl.due(datetime(2026, 10, 19, tzinfo=paris))
        due = pl.state.campaigns["pulse"].period_due
        assert due is not None
        local = due.astimezone(paris)
        assert local.weekday() < 5 and time(9) <= local.time() < time(18), local


def test_pulse_period_truncated_by_ends_at_and_empty_periods() -> None:
    pulse = campaign(
        "pulse",
        "pulse",
        sample_rate=1.0,
        starts_at="2026-11-02T00:00:00+01:00",
        ends_at="2026-11-03T00:00:00+01:00",
    )
    for i in range(50):
        pl = planner(pulse, device=f"d{i}")
        pl.due(at(0, 0))
        due = pl.state.campaigns["pulse"].period_due
        assert due is not None and at(0, 9) <= due < at(0, 18)
    weekend = campaign("w", "pulse", sample_rate=1.0, starts_at="2026-11-07T00:00:00+01:00",
                       ends_at="2026-11-09T00:00:00+01:00")  # fmt: skip
    pl = planner(weekend)
    assert pl.due(at(5, 10)) == []
    assert pl.take_skips() == {"no_working_time": 1}


def test_a_sampled_pulse_never_asked_lapses_at_the_period_end() -> None:
    start = "2026-11-02T00:00:00+01:00"
    pulse = campaign("pulse", "pulse", sample_rate=1.0, starts_at=start)
    pl = planner(pulse, last_prompt_at="2026-11-01T12:00:00+01:00")
    pl.due(at(0, 0))
    for day in range(7):
        for hour in (10, 15):
            assert pl.due(at(day, hour)) == []
    assert pl.due(at(7, 0)) == []
    assert pl.take_skips() == {"fatigue": 1, "not_working_day": 1, "lapsed": 1}
    assert pl.state.campaigns["pulse"].period_due is not None  # next week's prompt


def test_inactive_campaigns_do_nothing() -> None:
    pulse = campaign("pulse", "pulse", sample_rate=1.0, starts_at="2026-12-01T00:00:00Z")
    pl = planner(pulse)
    assert pl.due(at(1, 10)) == []
    assert pl.next_wakeup(at(1, 10)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert pl.take_skips() == {}


# -- outcomes ---------------------------------------------------------------------------


def test_snooze_comes_back_after_snooze_s_despite_fatigue_but_not_in_quiet_hours() -> None:
    pl = planner(campaign(delay_s=0), snooze_s=3 * 3600, dnd_after_prompt_s=3600)
    pl.observe(crash(at(1, 16), "e"))
    p = ask(pl, at(1, 16))
    pl.record(answer(p, "snoozed"), at(1, 16, 30))  # back at 19:30: quiet hours
    assert pl.due(at(1, 19, 30)) == []
    assert pl.take_skips() == {"quiet_hours": 1}
    again = ask(pl, at(2, 9))
    assert (again.campaign_id, again.trigger_event_id) == ("ev", "e")
    assert again.prompt_id != p.prompt_id
    pl.record(answer(again), at(2, 9, 5))
    pl.observe(crash(at(3, 10)))
    assert pl.due(at(3, 10)) == []
    assert pl.take_skips() == {"fatigue": 1}


def test_snoozed_campaign_drops_its_new_triggers_and_others_wait() -> None:
    a, b = campaign("a", delay_s=0), campaign("b", delay_s=0, event_types=["app_hang"])
    pl = planner(a, b)
    pl.observe(crash(at(1, 10)))
    pl.record(answer(ask(pl, at(1, 10)), "snoozed"), at(1, 10))
    pl.observe(crash(at(1, 12)))  # same campaign: the snoozed prompt comes back instead
    pl.observe({"type": "app_hang", "event_id": "h", "ts": at(1, 12)})
    assert pl.due(at(1, 12)) == []
    assert pl.take_skips_by_campaign() == {"a": {"snoozed": 1}, "b": {"fatigue": 1}}
    assert ask(pl, at(2, 10)).campaign_id == "a"


def test_recording_the_same_snooze_twice_is_harmless() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe(crash(at(1, 10)))
    p = ask(pl, at(1, 10))
    pl.record(answer(p, "snoozed"), at(1, 10))
    pl.record(answer(p, "snoozed"), at(1, 12))  # the box was read again after a restart
    assert ask(pl, at(2, 10)).trigger_event_id == p.trigger_event_id
    assert pl.take_skips() == {}


def test_opt_out_stops_the_campaign_for_good() -> None:
    pl = planner(campaign(delay_s=0), min_days_between_prompts=0, dnd_after_prompt_s=0)
    pl.observe(crash(at(1, 10)))
    pl.record(answer(ask(pl, at(1, 10)), "opted_out"), at(1, 10, 1))
    for day in range(2, 30):
        pl.observe(crash(at(day, 10)))
        assert pl.due(at(day, 11)) == []
    assert pl.take_skips() == {"opted_out": 28}
    restarted = planner(campaign(delay_s=0), state=PlannerState.from_json(pl.state.to_json()))
    restarted.observe(crash(at(31, 10)))
    assert restarted.due(at(31, 11)) == []


def test_expiry_is_reported_once_and_unseen_prompts_do_not_count_as_fatigue() -> None:
    pl = planner(campaign(delay_s=0, expires_after_s=3600))
    pl.observe(crash(at(1, 10)))
    p = ask(pl, at(1, 10))
    assert pl.expired(at(1, 10, 59)) == []
    pl.observe(crash(at(1, 11)))
    assert pl.due(at(1, 11)) == []  # the expired prompt is closed, then dnd holds back
    assert pl.expired(at(1, 11)) == [p]
    assert pl.expired(at(1, 12)) == []
    assert pl.take_skips() == {"dnd_after_prompt": 1}
    pl.observe(crash(at(2, 11)))
    assert ask(pl, at(2, 11)).created_at == at(2, 11)  # 24 h after expiry; no 7-day gap


def test_expiry_reported_by_the_helper_after_showing_counts_as_seen() -> None:
    pl = planner(campaign(delay_s=0, expires_after_s=3600))
    pl.observe(crash(at(1, 10)))
    p = ask(pl, at(1, 10))
    pl.record(answer(p, "expired", shown=True), at(1, 11))
    assert pl.expired(at(1, 11)) == []  # the helper reported it: not reported twice
    pl.observe(crash(at(3, 11)))
    assert pl.due(at(3, 11)) == []
    assert pl.take_skips() == {"fatigue": 1}


def test_an_answer_after_expiry_still_counts() -> None:
    pl = planner(campaign(delay_s=0, expires_after_s=3600))
    pl.observe(crash(at(1, 10)))
    p = ask(pl, at(1, 10))
    assert pl.due(at(1, 12)) == []  # expired by the planner
    pl.record(answer(p), at(1, 12, 1))  # the user clicked just in time, the box was late
    assert pl.expired(at(1, 12, 2)) == []
    pl.observe(crash(at(3, 11)))
    assert pl.due(at(3, 11)) == []
    assert pl.take_skips() == {"fatigue": 1}


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now"):
        planner().due(datetime(2026, 11, 3, 10))


def test_duplicate_campaign_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        planner(campaign("a"), campaign("a"))


# -- state --------------------------------------------------------------------------------


def test_state_round_trip_and_restart_gives_the_same_decisions() -> None:
    start = "2026-11-02T00:00:00+01:00"
    cs = [
        campaign("pulse", "pulse", sample_rate=1.0, starts_at=start),
        campaign("ev", delay_s=60, every_n=2),
    ]
    pl = planner(*cs)
    pl.observe(crash(at(1, 10)))
    pl.observe(crash(at(1, 10, 5), "x"))
    p = ask(pl, at(1, 10, 6))
    pl.record(answer(p, "snoozed"), at(1, 10, 7))
    pl.observe(crash(at(1, 11)))
    pl.due(at(1, 11))
    text = pl.state.to_json()
    copy = PlannerState.from_json(text)
    assert copy == pl.state
    assert copy.to_json() == text
    a, b = planner(*cs, state=copy), planner(*cs, state=PlannerState.from_json(text))
    pl_prompts = [pl.due(at(2, h)) for h in range(9, 18)]
    assert [a.due(at(2, h)) for h in range(9, 18)] == pl_prompts
    assert [b.due(at(2, h)) for h in range(9, 18)] == pl_prompts


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        b"",
        "{",
        "[]",
        "null",
        '{"v": 99}',
        '{"v": 1}',
        '{"v": 1, "last_seen_at": "yesterday"}',
        "\x00\xff garbage",
    ],
)
def test_corrupt_state_gives_a_fresh_state(text: Any) -> None:
    assert PlannerState.from_json(text) == PlannerState()


def test_corrupt_fields_give_a_fresh_state() -> None:
    pl = planner(campaign(delay_s=0))
    pl.observe(crash(at(1, 10)))
    ask(pl, at(1, 10))
    doc = json.loads(pl.state.to_json())
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["open_prompts"][0].update(trigger="nope"),
        lambda d: d["open_prompts"][0].update(created_at="2026-11-03T10:00:00"),
        lambda d: d["campaigns"]["ev"].update(period="3"),
        lambda d: d["campaigns"]["ev"].update(skip_reasons=["why"]),
        lambda d: d.update(skips=[]),
    ]
    for mutate in mutations:
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        assert PlannerState.from_json(json.dumps(bad)) == PlannerState()


def test_next_wakeup() -> None:
    pl = planner(campaign(delay_s=300))
    assert pl.next_wakeup(at(1, 10)) is None
    pl.observe(crash(at(1, 17, 58)))
    assert pl.next_wakeup(at(1, 17, 58)) == at(1, 18, 3)
    pl.due(at(1, 18, 3))
    wake = pl.next_wakeup(at(1, 18, 3))
    assert wake is not None and at(1, 18, 3) < wake <= at(2, 9)
    assert pl.next_wakeup(at(2, 9)) == at(2, 9)  # nothing holds it back any more


# -- simulation -----------------------------------------------------------------------------

T0 = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday; 12 weeks cross the October DST change
STEP = timedelta(minutes=15)
ZONES: tuple[tzinfo, ...] = (
    CET,
    ZoneInfo("Europe/Paris"),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=9)),
)
BUSY_RATE = 0.1


def _u(*parts: object) -> float:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sim_campaigns(rate: float) -> list[Campaign]:
    start = T0.isoformat()
    return [
        campaign("pulse", "pulse", sample_rate=rate, period_days=7, starts_at=start),
        campaign("control", "control", sample_rate=rate, period_days=7, starts_at=start),
        campaign("crash", delay_s=300, every_n=2, starts_at=start),
    ]


@dataclass
class Device:
    key: str
    tz: tzinfo
    planner: SurveyPlanner
    crashes: list[datetime]
    next_crash: int = 0
    responses: list[tuple[datetime, Answer]] = field(default_factory=list)
    recorded: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class SimResult:
    devices: list[Device]
    prompts: list[tuple[str, Prompt, str, bool]]  # device, prompt, outcome, busy then
    skips: dict[str, Counter[str]]
    weekly_not_sampled: dict[str, Counter[int]]
    calls: int = 0


def simulate(n: int, weeks: int, rate: float, *, grid: bool) -> SimResult:
    """Run ``n`` devices for ``weeks``; ``grid``: call every device at every 15-min step,
    else only at the steps at or after its next_wakeup / crash / user response."""
    campaigns = sim_campaigns(rate)
    end = T0 + weeks * 7 * D
    devices = []
    for i in range(n):
        rng = random.Random(f"crashes-{i}")
        per_week = rng.choice([0.1] * 6 + [1.0] * 3 + [5.0])
        count = sum(1 for _ in range(weeks * 7 * 24) if rng.random() < per_week / (7 * 24))
        crashes = sorted(T0 + (end - T0) * rng.random() for _ in range(count))
        pl = SurveyPlanner(
            campaigns,
            FatigueSettings(),
            PlannerState(),
            device_key=f"dev-{i:05d}",
            tz=ZONES[i % len(ZONES)],
        )
        devices.append(Device(f"dev-{i:05d}", ZONES[i % len(ZONES)], pl, crashes))
    result = SimResult(devices, [], defaultdict(Counter), defaultdict(Counter))
    outcome_of: dict[str, int] = {}

    def process(dev: Device, now: datetime) -> datetime | None:
        pl = dev.planner
        while dev.next_crash < len(dev.crashes) and dev.crashes[dev.next_crash] <= now:
            ts = dev.crashes[dev.next_crash]
            pl.observe(crash(ts, f"{dev.key}-c{dev.next_crash}"))
            dev.next_crash += 1
        for when, ans in [r for r in dev.responses if r[0] <= now]:
            dev.responses.remove((when, ans))
            pl.record(ans, now)
            dev.recorded[(ans.campaign_id, ans.outcome)] += 1
        busy = _u("busy", dev.key, now.isoformat()) < BUSY_RATE
        result.calls += 1
        for p in pl.due(now, busy=busy):
            r = random.Random(p.prompt_id)
            x = r.random()
            if x < 0.55:
                outcome, when, shown = (
                    "answered",
                    now + r.uniform(60, 3 * 3600) * timedelta(seconds=1),
                    True,
                )
            elif x < 0.75:
                outcome, when, shown = (
                    "dismissed",
                    now + r.uniform(0, 1800) * timedelta(seconds=1),
                    True,
                )
            elif x < 0.80:
                outcome, when, shown = (
                    "snoozed",
                    now + r.uniform(0, 600) * timedelta(seconds=1),
                    True,
                )
            elif x < 0.82:
                outcome, when, shown = "opted_out", now + timedelta(seconds=30), True
            elif x < 0.90:
                outcome, when, shown = "expired", p.expires_at, True  # shown, ignored
            else:
                outcome, when, shown = "unseen", p.expires_at, False  # user away
            result.prompts.append((dev.key, p, outcome, busy))
            outcome_of[p.prompt_id] = len(result.prompts) - 1
            if outcome != "unseen":
                ans = Answer(
                    p.prompt_id,
                    p.campaign_id,
                    outcome,  # type: ignore[arg-type]
                    shown_at=now if shown else None,
                    value=3 if outcome == "answered" else None,
                )
                dev.responses.append((when, ans))
        for p in pl.expired(now):
            assert result.prompts[outcome_of[p.prompt_id]][2] == "unseen"
        for cid, counts in pl.take_skips_by_campaign().items():
            result.skips[cid].update(counts)
            if "not_sampled" in counts:
                week = (now - T0) // (7 * D)
                result.weekly_not_sampled[cid][week] += counts["not_sampled"]
        times = [w for w, _ in dev.responses]
        if dev.next_crash < len(dev.crashes):
            times.append(dev.crashes[dev.next_crash])
        wake = pl.next_wakeup(now)
        if wake is not None:
            times.append(wake)
        return min(times) if times else None

    if grid:
        now = T0
        while now <= end:
            for dev in devices:
                process(dev, now)
            now += STEP
        return result
    heap = [(T0, i) for i in range(n)]
    while heap:
        now, i = heapq.heappop(heap)
        nxt = process(devices[i], now)
        if nxt is None:
            continue
        steps = max(1, math.ceil((nxt - T0) / STEP - 1e-9) - round((now - T0) / STEP))
        nxt = now + steps * STEP
        if nxt <= end:
            heapq.heappush(heap, (nxt, i))
    return result


def test_wakeup_driven_simulation_matches_calling_every_15_minutes() -> None:
    """next_wakeup never skips a step at which due() would have done something."""
    every = simulate(60, 4, 0.3, grid=True)
    sparse = simulate(60, 4, 0.3, grid=False)
    assert len(every.prompts) > 60
    assert sorted((d, p.prompt_id, o) for d, p, o, _ in sparse.prompts) == sorted(
        (d, p.prompt_id, o) for d, p, o, _ in every.prompts
    )
    assert sparse.skips == every.skips
    for a, b in zip(sparse.devices, every.devices, strict=True):
        assert a.planner.state.to_json() == b.planner.state.to_json()
    assert sparse.calls * 10 < every.calls


def _bounds(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    sigma = math.sqrt(n * p * (1 - p))
    return n * p - z * sigma, n * p + z * sigma


def test_fleet_simulation_12_weeks() -> None:
    n, weeks, rate = 2000, 12, 0.05
    started = wallclock.perf_counter()
    res = simulate(n, weeks, rate, grid=False)
    elapsed = wallclock.perf_counter() - started
    by_device: dict[str, list[tuple[Prompt, str, bool]]] = defaultdict(list)
    for dev, p, outcome, busy in res.prompts:
        by_device[dev].append((p, outcome, busy))
    zones = {d.key: d.tz for d in res.devices}
    crashes = {d.key: d.crashes for d in res.devices}
    snooze_reasks = 0
    for dev, prompts in by_device.items():
        prompts.sort(key=lambda x: x[0].created_at)
        last_seen: tuple[Prompt, str] | None = None
        last_closed: datetime | None = None
        for p, outcome, busy in prompts:
            local = p.created_at.astimezone(zones[dev])
            assert local.weekday() < 5, (dev, local)
            assert time(9) <= local.time() < time(18), (dev, local)
            assert not busy
            if last_closed is not None:
                assert p.created_at >= last_closed + D  # dnd after any prompt
            if last_seen is not None and p.created_at < last_seen[0].created_at + 7 * D:
                prev, prev_outcome = last_seen
                assert prev_outcome == "snoozed", (dev, prev, p)  # the only exception:
                assert p.campaign_id == prev.campaign_id  # the snoozed prompt comes back
                assert p.trigger_event_id == prev.trigger_event_id
                snooze_reasks += 1
            if outcome != "unseen":
                last_seen = (p, outcome)
            last_closed = p.expires_at if outcome in ("unseen", "expired") else p.created_at
            if p.trigger == "control":  # never tied to a bad event in the period before
                assert not [c for c in crashes[dev] if p.created_at - 7 * D <= c <= p.created_at]

    # sample rates: each week's sampled count within binomial 99.9 % bounds, and overall
    figures: dict[str, Any] = {}
    for cid in ("pulse", "control"):
        c = next(c for c in sim_campaigns(rate) if c.id == cid)
        sampled_week = []
        for week in range(weeks):
            expected = sum(sample_draw(cid, d.key, week) < rate for d in res.devices)
            sampled = n - res.weekly_not_sampled[cid][week]
            assert sampled == expected
            lo, hi = _bounds(n, rate)
            assert lo <= sampled <= hi, (cid, week, sampled, lo, hi)
            sampled_week.append(sampled)
        lo, hi = _bounds(n * weeks, rate)
        assert lo <= sum(sampled_week) <= hi
        asked = [
            p
            for _, p, _, _ in res.prompts
            if p.campaign_id == cid and (p.created_at - T0) // (7 * D) < weeks
        ]
        figures[cid] = {
            "sampled_rate": sum(sampled_week) / (n * weeks),
            "sampled_per_week": (min(sampled_week), max(sampled_week)),
            "asked_rate": len(asked) / (n * weeks),
            "bounds_per_week": _bounds(n, rate),
        }
        assert c.trigger.sample_rate == rate

    # every trigger is asked, counted as dropped with a reason, or still waiting at the end
    outcomes = Counter(o for _, _, o, _ in res.prompts)
    for cid in ("pulse", "control", "crash"):
        asked = [p for _, p, _, _ in res.prompts if p.campaign_id == cid]
        snoozes = sum(d.recorded[(cid, "snoozed")] for d in res.devices)
        if cid == "crash":
            # every 2nd crash observed (after an opt-out: counted "opted_out")
            triggers = sum(d.next_crash // 2 for d in res.devices)
        else:
            triggers = n * (weeks + 1)  # the last step starts week 12
        waiting = 0
        for d in res.devices:
            cs = d.planner.state.campaign(cid)
            waiting += sum(x is not None for x in (cs.snoozed_until, cs.pending_due, cs.period_due))
        dropped = sum(v for r, v in res.skips[cid].items() if r in DROP_REASONS)
        assert triggers + snoozes == len(asked) + dropped + waiting, cid
    assert all(r in SKIP_REASONS for counts in res.skips.values() for r in counts)

    per_device_week = len(res.prompts) / (n * weeks)
    total_skips = Counter[str]()
    for counts in res.skips.values():
        total_skips.update(counts)
    print(
        f"\nsimulation: {n} devices x {weeks} weeks in {elapsed:.1f} s "
        f"({res.calls} planner evaluations)\n"
        f"prompts: {len(res.prompts)} = {per_device_week:.4f} per device per week; "
        f"snooze re-asks {snooze_reasks}; outcomes {dict(outcomes)}\n"
        f"by campaign: {dict(Counter(p.campaign_id for _, p, _, _ in res.prompts))}"
    )
    for cid, f in figures.items():
        print(
            f"{cid}: target {rate:.3f}, sampled {f['sampled_rate']:.4f} "
            f"(per week {f['sampled_per_week'][0]}-{f['sampled_per_week'][1]} of {n}, "
            f"99.9 % bounds {f['bounds_per_week'][0]:.1f}-{f['bounds_per_week'][1]:.1f}), "
            f"asked {f['asked_rate']:.4f}"
        )
    for cid, counts in sorted(res.skips.items()):
        print(f"skips {cid}: {dict(sorted(counts.items()))}")
    print(f"skips total: {dict(sorted(total_skips.items()))}")
    assert elapsed < 30  # about 8 s here; a guard against a slow planner, not a benchmark
