"""Per-metric scores on tiny hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from dexscope.wire import SURVEY_OUTCOMES
from scoring.apdex import SATISFIED, TOLERATING, classify
from scoring.metrics import (
    QUESTION_TYPES,
    DeviceDayInputs,
    duration_scores,
    group_index,
    linear_score,
    metric_scores,
    pressure_scores,
    rate_scores,
    sentiment_scores,
    survey_to_100,
)
from scoring.personas import METRICS, persona_arrays

ANSWERED = SURVEY_OUTCOMES.index("answered")
DISMISSED = SURVEY_OUTCOMES.index("dismissed")
SNOOZED = SURVEY_OUTCOMES.index("snoozed")


def test_group_index_is_device_major() -> None:
    assert group_index([0, 0, 2], [0, 3, 1], n_days=4).tolist() == [0, 3, 9]


def test_duration_scores_are_apdex_times_100() -> None:
    # group 0: S T F -> 50; group 1: S S -> 100; group 2: only NaN -> NaN; group 3 nothing
    values = [10.0, 30.0, 50.0, 1.0, 2.0, np.nan]
    group = [0, 0, 0, 1, 1, 2]
    score, n = duration_scores(values, group, 4, threshold=10.0, frustrating=40.0)
    assert score[:2].tolist() == [50.0, 100.0]
    assert np.isnan(score[2:]).all()
    assert n.tolist() == [3, 2, 0, 0]


def test_duration_scores_agree_with_apdex_classify() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(3, 1, 500)
    values[rng.random(500) < 0.1] = np.nan
    group = rng.integers(0, 20, 500)
    t = rng.choice([10.0, 20.0], 500)
    score, _ = duration_scores(values, group, 20, t, 4 * t)
    classes = classify(values, t)
    credit = np.where(classes == SATISFIED, 1.0, np.where(classes == TOLERATING, 0.5, 0.0))
    for g in range(20):
        mine = classes[group == g] >= 0
        expected = 100 * credit[group == g][mine].mean() if mine.any() else np.nan
        np.testing.assert_allclose(score[g], expected)


def test_duration_below_min_samples_is_nan() -> None:
    score, _ = duration_scores([1.0, 1.0, 1.0], [0, 0, 1], 2, 10.0, 40.0, min_samples=2)
    assert score[0] == 100.0
    assert np.isnan(score[1])


def test_duration_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError):
        duration_scores([1.0], [0], 1, 0.0, 1.0)


def test_linear_score() -> None:
    out = linear_score([0.0, 0.25, 0.5, 1.0, np.nan], good=0.0, frustrating=0.5)
    assert out[:4].tolist() == [100.0, 50.0, 0.0, 0.0]
    assert np.isnan(out[4])
    assert linear_score(0.05, 0.05, 0.25) == 100.0


def test_rate_scores_per_active_hour_and_nan_without_exposure() -> None:
    # group 0: 2 events in 8 h = 0.25/h against good 0, frustrating 0.5 -> 50
    # group 1: no events, 1 h -> 100 ; group 2: 10 minutes active -> NaN
    score, rate = rate_scores([0, 0], 3, [8 * 3600.0, 3600.0, 600.0], 0.0, 0.5, 1800.0)
    assert score[:2].tolist() == [50.0, 100.0]
    assert rate[:2].tolist() == [0.25, 0.0]
    assert np.isnan(score[2]) and np.isnan(rate[2])


def test_pressure_share_ignores_unmeasured_intervals() -> None:
    # group 0: 180 s stalled over 3600 s -> 0.05 -> 100; the NaN interval counts neither way
    # group 1: 540 of 3600 -> 0.15 -> 50 (good 0.05, frustrating 0.25)
    score, share = pressure_scores(
        [180.0, np.nan, 540.0], [3600.0, 3600.0, 3600.0], [0, 0, 1], 3, 0.05, 0.25, 1800.0
    )
    assert share[:2].tolist() == [0.05, 0.15]
    assert score[0] == 100.0
    assert score[1] == pytest.approx(50.0)
    assert np.isnan(score[2])


def test_survey_to_100_every_scale() -> None:
    q = [QUESTION_TYPES.index(t) for t in ("stars", "nps", "ces", "yes_no", "emoji")]
    assert survey_to_100([4, 9, 1, 1, 5], q).tolist() == [75.0, 90.0, 0.0, 100.0, 100.0]
    assert np.isnan(survey_to_100([np.nan], [0])).all()


def test_sentiment_recency_confidence_and_max_age() -> None:
    # device 0: answers 100 at t=0.5 and 0 at t=1.5, a dismissed prompt at 1.2, over 3 days
    score, conf, n = sentiment_scores(
        device=[0, 0, 0],
        t_days=[0.5, 1.5, 1.2],
        value_100=[100.0, 0.0, np.nan],
        outcome=[ANSWERED, ANSWERED, DISMISSED],
        n_devices=1,
        n_days=3,
        half_life_days=1.0,
        max_age_days=2,
    )
    assert score[0] == 100.0 and conf[0] == 1.0 and n[0] == 1
    # day 1: ages 1.5 and 0.5 days -> weights 2^-1.5 and 2^-0.5
    w_old, w_new = 2**-1.5, 2**-0.5
    assert score[1] == pytest.approx(100 * w_old / (w_old + w_new))
    assert conf[1] == pytest.approx(2 / 3)
    # day 2: the day-0 answer is past max_age (2 days) and dropped; only the 0 answer remains
    assert score[2] == 0.0 and conf[2] == pytest.approx(1 / 2)


def test_sentiment_snoozed_not_counted_and_no_answer_is_nan() -> None:
    score, conf, _ = sentiment_scores(
        [0, 0, 1], [0.1, 0.2, 0.3], [50.0, np.nan, np.nan], [ANSWERED, SNOOZED, DISMISSED], 2, 1
    )
    assert score[0] == 50.0 and conf[0] == 1.0
    assert np.isnan(score[1]) and np.isnan(conf[1])  # dismissed only: no sentiment, not "good"


def test_missing_data_is_never_good() -> None:
    """A device-day with no telemetry at all, and one with only active time."""
    params = persona_arrays()
    inputs = DeviceDayInputs(
        n_devices=2,
        n_days=1,
        persona=np.array([0, 0]),
        resource_group=np.array([1]),
        interval_s=np.array([3600.0]),
        cpu_pressure_s=np.array([np.nan]),
        memory_pressure_s=np.array([np.nan]),
        io_pressure_s=np.array([np.nan]),
    )
    scores = metric_scores(inputs, params).scores
    assert np.isnan(scores[0]).all()
    present = {METRICS[j] for j in np.flatnonzero(~np.isnan(scores[1]))}
    # an hour without hangs or crashes is evidence; no probe, pressure or boot is not
    assert present == {"app_hang_rate", "app_crash_rate", "system_crash_rate"}


def test_failed_probe_counts_as_failure_not_as_latency() -> None:
    params = persona_arrays()
    inputs = DeviceDayInputs(
        n_devices=1,
        n_days=1,
        persona=np.array([0]),
        probe_s=np.array([0.5, 30.0]),
        probe_ok=np.array([True, False]),
        probe_group=np.array([0, 0]),
        resource_group=np.array([0]),
        interval_s=np.array([3600.0]),
    )
    scores = metric_scores(inputs, params).scores[0]
    assert scores[METRICS.index("probe_latency")] == 100.0
    # 1 failure per hour, good 0 and frustrating 2 per hour -> 50
    assert scores[METRICS.index("probe_failure_rate")] == 50.0


def test_inputs_reject_mismatched_arrays() -> None:
    with pytest.raises(ValueError, match="same length"):
        DeviceDayInputs(1, 1, np.array([0]), boot_s=np.array([1.0]), boot_group=np.array([0, 0]))
    with pytest.raises(ValueError, match="interval_s"):
        DeviceDayInputs(
            1,
            1,
            np.array([0]),
            resource_group=np.array([0]),
            interval_s=np.array([60.0]),
            cpu_pressure_s=np.array([1.0, 2.0]),
        )
    with pytest.raises(ValueError, match="persona"):
        DeviceDayInputs(2, 1, np.array([0]))


def test_sentiment_answers_before_the_period_carry_in_up_to_max_age() -> None:
    score, _, n = sentiment_scores(
        [0, 0], [-1.5, -30.0], [60.0, 0.0], [ANSWERED, ANSWERED], 1, 2, max_age_days=3
    )
    # the t=-1.5 answer counts for days -2 … 0; the t=-30 one is long expired
    assert score[0] == pytest.approx(60.0) and n[0] == 1
    assert np.isnan(score[1]) and n[1] == 0
