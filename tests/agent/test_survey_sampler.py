"""The survey sampler on a real spool and a real prompt box, with a controlled clock."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.runner import SamplerRunner
from agent.samplers import SamplerContext
from agent.samplers.survey import SURVEY_BOX, SurveySampler
from agent.spool import Spool
from agent.surveys.box import SurveyBox
from agent.surveys.model import Answer
from collector.ingest.schemas import EVENT

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CAMPAIGN = {
    "id": "after-crash",
    "name": "After a crash",
    "question": {"type": "ces", "text": "How easy was it to get back to work?"},
    "trigger": {"kind": "event", "event_types": ["app_crash"], "delay_s": 0},
    "starts_at": "2026-11-01T00:00:00Z",
    "expires_after_s": 3600,
}
ANY_TIME = {"quiet_hours": ["00:00", "00:00"], "working_days": [0, 1, 2, 3, 4, 5, 6]}


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY_10

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool.db")
    yield spool
    spool.close()


def setup(
    tmp_path: Path, spool: Spool, survey_box: Path | None = None
) -> tuple[SurveySampler, SamplerContext, Clock]:
    clock = Clock()
    sampler = SurveySampler(clock=clock)
    sampler.check_options({"campaigns": [CAMPAIGN], "fatigue": ANY_TIME})
    sampler.configure({"campaigns": [CAMPAIGN], "fatigue": ANY_TIME})
    ctx = SamplerContext(
        tmp_path,
        spool.stats,
        SamplerRunner().take_stats,
        spool.mark,
        spool_now=lambda events, marks: spool.append(events, marks=marks),
        survey_box=survey_box,
    )
    return sampler, ctx, clock


def crash(ts: datetime) -> dict[str, Any]:
    return {
        "event_id": "7b0e2d5c-0a5e-4f0e-9b1e-3c6f1c2a9d10",
        "ts": ts,
        "type": "app_crash",
        "app_name": "excel.exe",
        "source": "test",
    }


def spooled(spool: Spool) -> list[dict[str, Any]]:
    rows = spool._db.execute("SELECT body FROM events ORDER BY seq").fetchall()
    events = [json.loads(r[0]) for r in rows]
    for event in events:
        EVENT.validate_python(event)
    return events


def test_a_crash_prompts_and_the_answer_is_spooled_before_the_box_lets_go(
    tmp_path: Path, spool: Spool
) -> None:
    sampler, ctx, clock = setup(tmp_path, spool)
    runner = SamplerRunner()
    ctx.observed.append(crash(MONDAY_10 - timedelta(minutes=1)))  # type: ignore[arg-type]
    runner.round([sampler], ctx, spool)
    box = SurveyBox(tmp_path / SURVEY_BOX)
    (prompt,) = box.pending(clock.now)
    assert (prompt.campaign_id, prompt.trigger) == ("after-crash", "event")
    shown = clock.now + timedelta(seconds=20)
    box.answer(
        Answer(prompt.prompt_id, "after-crash", "answered", shown, shown + timedelta(seconds=7), 6)
    )
    clock.now += timedelta(minutes=1)
    runner.round([sampler], ctx, spool)
    (event,) = spooled(spool)
    assert event["type"] == "survey_response" and event["outcome"] == "answered"
    assert (event["value"], event["question_type"], event["trigger"]) == (6.0, "ces", "event")
    assert event["trigger_event_id"] == "7b0e2d5c-0a5e-4f0e-9b1e-3c6f1c2a9d10"
    assert event["latency_s"] == 7.0
    assert "user_hash" not in event
    assert box.open_prompts() == [] and box.pending(clock.now) == []
    # the planner's state went with the answer: a restarted sampler asks nothing more now
    again, ctx2, clock2 = setup(tmp_path, spool)
    clock2.now = clock.now + timedelta(minutes=1)
    runner.round([again], ctx2, spool)
    assert box.open_prompts() == [] and len(spooled(spool)) == 1


def test_a_shared_survey_box_is_used_in_its_shared_mode(tmp_path: Path, spool: Spool) -> None:
    shared = tmp_path / "shared-box"
    sampler, ctx, clock = setup(tmp_path / "state", spool, survey_box=shared)
    runner = SamplerRunner()
    ctx.observed.append(crash(MONDAY_10))  # type: ignore[arg-type]
    runner.round([sampler], ctx, spool)
    assert not (tmp_path / "state" / SURVEY_BOX).exists()  # not the private box
    helper = SurveyBox(shared, create=False)
    (prompt,) = helper.pending(clock.now)
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(shared / "answers").st_mode) == 0o3733
        mode = os.stat(shared / "prompts" / f"{prompt.prompt_id}.json").st_mode
        assert stat.S_IMODE(mode) == 0o644
    helper.answer(Answer(prompt.prompt_id, "after-crash", "answered", clock.now, clock.now, 2))
    clock.now += timedelta(minutes=1)
    runner.round([sampler], ctx, spool)
    (event,) = spooled(spool)
    assert (event["outcome"], event["value"]) == ("answered", 2.0)
    assert helper.pending(clock.now) == [] and os.listdir(shared / "answers") == []


def test_an_unanswered_prompt_expires_and_is_withdrawn(tmp_path: Path, spool: Spool) -> None:
    sampler, ctx, clock = setup(tmp_path, spool)
    runner = SamplerRunner()
    ctx.observed.append(crash(MONDAY_10))  # type: ignore[arg-type]
    runner.round([sampler], ctx, spool)
    box = SurveyBox(tmp_path / SURVEY_BOX)
    assert len(box.open_prompts()) == 1
    clock.now += timedelta(hours=2)  # past expires_after_s
    runner.round([sampler], ctx, spool)
    (event,) = spooled(spool)
    assert (event["outcome"], event["trigger"]) == ("expired", "event")
    assert "value" not in event and box.open_prompts() == []


def test_hostile_answer_files_are_refused_and_counted(tmp_path: Path, spool: Spool) -> None:
    sampler, ctx, clock = setup(tmp_path, spool)
    runner = SamplerRunner()
    ctx.observed.append(crash(MONDAY_10))  # type: ignore[arg-type]
    runner.round([sampler], ctx, spool)
    box = SurveyBox(tmp_path / SURVEY_BOX)
    (prompt,) = box.open_prompts()
    (box.answers_dir / f"{prompt.prompt_id}.json").write_text('{"outcome": "answered", "value": 99')
    clock.now += timedelta(minutes=1)
    runner.round([sampler], ctx, spool)
    assert spooled(spool) == []
    assert ctx.agent_state["survey_skips"] == {"answer_rejected_malformed": 1}
    assert len(box.open_prompts()) == 1  # the prompt stays open for a real answer


def test_survey_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^campaigns\[0\]\.question\.type"):
        SurveySampler.check_options(
            {"campaigns": [{**CAMPAIGN, "question": {"type": "slider", "text": "x"}}]}
        )
    with pytest.raises(ValueError, match=r"^campaigns\[1\]\.id: duplicate"):
        SurveySampler.check_options({"campaigns": [CAMPAIGN, CAMPAIGN]})
    with pytest.raises(ValueError, match=r"^fatigue\.quiet_hours"):
        SurveySampler.check_options({"fatigue": {"quiet_hours": ["late"]}})
    with pytest.raises(ValueError, match=r"^colour: unknown key"):
        SurveySampler.check_options({"colour": "blue"})
