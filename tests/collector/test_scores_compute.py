"""The bridge from stored events to scored rows (collector.scores.compute), without a database.

Event rows as the repository yields them go in; the rows the job stores come out. The scores
themselves are the scoring core's (tested in tests/scoring); here: which events count where,
what is left out, and that the stored row explains itself (points lost sum to 100 - score).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from collector.scores.compute import Block, build_inputs, score_block
from scoring.personas import DEFAULT_PERSONAS

DAY0 = date(2026, 11, 2)
DEVICES = [uuid.UUID(int=1), uuid.UUID(int=2)]


def at(day: int, hour: float) -> datetime:
    return datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=day, hours=hour)


def rows() -> list[tuple[int, str, datetime, dict[str, Any]]]:
    out: list[tuple[int, str, datetime, dict[str, Any]]] = [
        (0, "boot", at(0, 8), {"boot_duration_s": 70.0, "booted_at": "x", "boot_kind": "cold"}),
        (0, "logon", at(0, 8.1), {"logon_duration_s": 300.0, "first_logon": True}),
        (0, "logon", at(0, 8.2), {"logon_duration_s": 40.0, "first_logon": False}),
        (0, "app_hang", at(0, 10), {"app_name": "excel.exe", "hang_duration_s": 20.0}),
        (0, "app_crash", at(0, 11), {"app_name": "teams.exe"}),
        (0, "app_resource", at(0, 12), {"app_name": "outlook.exe", "interval_s": 300.0}),
        (0, "boot", at(2, 8), {"boot_duration_s": 500.0}),  # after the block: ignored
        # an answer 10 days before the block carries into it; 40 days before does not
        (
            0,
            "survey_response",
            at(-10, 9),
            {"outcome": "answered", "value": 4, "question_type": "stars"},
        ),
        (
            0,
            "survey_response",
            at(-40, 9),
            {"outcome": "answered", "value": 1, "question_type": "stars"},
        ),
    ]
    out += [
        (0, "resource_sample", at(0, 9 + h), {"interval_s": 3600.0, "cpu_pressure_s": 36.0})
        for h in range(8)
    ]
    out += [
        (1, "resource_sample", at(1, 9 + h), {"interval_s": 60.0, "disk_percent": 70.0 + h})
        for h in range(3)
    ]
    return out


def block() -> Block:
    return Block(DEVICES, ["knowledge_worker", "developer"], DAY0, 2)


def test_inputs_count_what_scores_and_leave_out_the_rest() -> None:
    inputs, apps, present_g, present_a, extras = build_inputs(block(), DEFAULT_PERSONAS, rows())
    assert len(extras["disk_percent"]) == len(inputs.interval_s)
    assert inputs.boot_s.tolist() == [70.0]  # the boot after the block is not read
    assert inputs.logon_s.tolist() == [40.0]  # the first sign-in is provisioning
    assert apps == ["excel.exe", "outlook.exe", "teams.exe"]
    assert [apps[a] for a in inputs.hang_app] == ["excel.exe"]
    assert [apps[a] for a in inputs.crash_app] == ["teams.exe"]
    assert [apps[a] for a in present_a] == ["outlook.exe"] and present_g.tolist() == [0]
    assert inputs.survey_t_days.tolist() == pytest.approx([-10 + 9 / 24])
    assert inputs.persona.tolist() == [0, 1]
    assert inputs.resource_group.tolist() == [0] * 8 + [3] * 3  # device 1, day 1 -> 1 * 2 + 1
    # pressure is reported by some samples only: the others are NaN (not measured)
    assert inputs.cpu_pressure_s[:8].tolist() == [36.0] * 8


def test_rows_explain_themselves() -> None:
    scored = score_block(block(), DEFAULT_PERSONAS, rows())
    by_key = {(r["device_id"], r["day"]): r for r in scored.device_days}
    # device 0 has data on day 0 only, device 1 on day 1 only: no empty rows
    assert set(by_key) == {(DEVICES[0], DAY0), (DEVICES[1], DAY0 + timedelta(days=1))}
    row = by_key[DEVICES[0], DAY0]
    assert row["persona"] == "knowledge_worker"
    assert row["counts"]["boots"] == 1 and row["counts"]["logons"] == 1
    # boot 70 s and sign-in 40 s are tolerating for the knowledge worker (T 60 s / 30 s)
    assert row["metrics"]["boot"] == 50.0 and row["metrics"]["logon"] == 50.0
    assert row["startup"] == 50.0
    assert row["active_s"] == 8 * 3600.0
    assert row["metrics"]["sentiment"] == pytest.approx(75.0)  # 4 stars of 5, carried in
    # raw measures beside the scores: 36 s stalled per hour is a 1 % CPU pressure share
    assert row["measures"]["boot_s_median"] == 70.0
    assert row["measures"]["logon_s_median"] == 40.0
    assert row["measures"]["cpu_pressure_share"] == pytest.approx(0.01)
    assert row["measures"]["disk_percent_max"] is None  # not reported
    assert sum(row["points_lost"].values()) == pytest.approx(100.0 - row["score"], abs=1e-4)
    # minutes lost: 10 s of boot, 10 s of sign-in, the 20 s hang, a 5-minute crash
    assert row["time_lost"]["boot"] == pytest.approx(10 / 60)
    assert row["time_lost_min"] == pytest.approx(10 / 60 + 10 / 60 + 20 / 60 + 5.0)
    apps = {(r["app_name"]): r for r in scored.app_days}
    assert set(apps) == {"excel.exe", "outlook.exe", "teams.exe"}
    assert apps["teams.exe"]["crashes"] == 1 and apps["excel.exe"]["hangs"] == 1
    assert apps["outlook.exe"]["score"] == 100.0
    other = by_key[DEVICES[1], DAY0 + timedelta(days=1)]
    assert other["measures"]["disk_percent_max"] == 72.0


def test_wanted_limits_the_rows_and_scoring_is_deterministic() -> None:
    only = score_block(block(), DEFAULT_PERSONAS, rows(), wanted={(1, 1)})
    assert [(r["device_id"], r["day"]) for r in only.device_days] == [
        (DEVICES[1], DAY0 + timedelta(days=1))
    ]
    assert only.app_days == []
    assert score_block(block(), DEFAULT_PERSONAS, rows()) == score_block(
        block(), DEFAULT_PERSONAS, rows()
    )
