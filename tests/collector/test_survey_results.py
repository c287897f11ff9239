"""Campaign results as a pure function: the privacy floor, persona and week splits, priming."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.surveys.service import MIN_RESPONSES, summarise_responses

MONDAY = datetime(2026, 11, 2, 9, tzinfo=UTC)


def answer(value: int, trigger: str, n: int) -> dict[str, Any]:
    return {"outcome": "answered", "value": value, "trigger": trigger, "prompt_id": f"p{n}"}


def test_scores_of_fewer_than_min_responses_answers_are_hidden() -> None:
    rows = [(MONDAY, "developer", answer(5, "pulse", i)) for i in range(MIN_RESPONSES - 1)]
    results = summarise_responses("c", "stars", "pulse", rows)
    assert results.min_responses == MIN_RESPONSES == 5
    assert results.counts["answered"] == 4 and results.response_rate == 1.0
    assert results.score.n == 4
    assert results.score.mean is None and results.score.stdev is None
    assert results.score.note == "hidden: fewer than 5 answers"
    # one more answer and the mean shows (with its interval: five answers)
    rows.append((MONDAY, "developer", answer(3, "pulse", 99)))
    shown = summarise_responses("c", "stars", "pulse", rows).score
    assert shown.mean == pytest.approx((4 * 100 + 50) / 5) and shown.ci95 is not None


def test_split_by_persona_and_by_iso_week() -> None:
    rows = [
        (MONDAY, "developer", answer(5, "pulse", 1)),
        (MONDAY + timedelta(days=6, hours=14), "developer", answer(1, "pulse", 2)),  # Sunday
        (MONDAY + timedelta(days=7), None, answer(3, "pulse", 3)),  # next Monday
    ]
    results = summarise_responses("c", "stars", "pulse", rows, min_responses=1)
    assert {k: v.prompts for k, v in results.by_persona.items()} == {
        "developer": 2,
        "unassigned": 1,
    }
    assert [(p.week_start, p.prompts) for p in results.trend] == [
        (datetime(2026, 11, 2, tzinfo=UTC), 2),
        (datetime(2026, 11, 9, tzinfo=UTC), 1),
    ]
    assert results.trend[0].score.mean == pytest.approx(50.0)
    assert results.trend[1].score.mean == pytest.approx(50.0)


def test_priming_is_event_minus_control_with_a_welch_interval() -> None:
    event = [1, 2, 2, 3, 1]  # stars -> 0, 25, 25, 50, 0: mean 20
    control = [4, 4, 5, 3, 4]  # 75, 75, 100, 50, 75: mean 75
    rows = [(MONDAY, "kw", answer(v, "event", i)) for i, v in enumerate(event)]
    rows += [(MONDAY, "kw", answer(v, "control", 10 + i)) for i, v in enumerate(control)]
    priming = summarise_responses("c", "stars", "event", rows).priming
    assert priming.event_n == 5 and priming.control_n == 5
    assert priming.difference == pytest.approx(20.0 - 75.0)
    var_e = sum((x - 20) ** 2 for x in (0, 25, 25, 50, 0)) / 4
    var_c = sum((x - 75) ** 2 for x in (75, 75, 100, 50, 75)) / 4
    half = 1.96 * math.sqrt(var_e / 5 + var_c / 5)
    assert priming.ci95 is not None
    assert priming.ci95.low == pytest.approx(-55.0 - half)
    assert priming.ci95.high == pytest.approx(-55.0 + half)


def test_no_priming_figure_below_the_floor() -> None:
    rows = [(MONDAY, "kw", answer(1, "event", i)) for i in range(6)]
    rows += [(MONDAY, "kw", answer(4, "control", 10 + i)) for i in range(3)]
    priming = summarise_responses("c", "stars", "event", rows).priming
    assert priming.difference is None and priming.ci95 is None
    assert priming.note is not None and "control" in priming.note
