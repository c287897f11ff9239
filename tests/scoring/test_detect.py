"""The streaming detection core: baselines, CUSUM, seasonality, cohort tests, overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.detect import (
    DetectParams,
    cusum,
    detect_series,
    mean_difference_test,
    overlap,
    rate_ratio_test,
    robust_z,
)

DAY = 86400.0


def test_a_step_is_flagged_after_it_with_its_onset_and_never_before() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(100, 2, 40), rng.normal(80, 2, 10)])
    ts = np.arange(50) * DAY
    result, state = detect_series(ts, values, params=DetectParams(direction=-1))
    assert not result.flag[:40].any()
    assert result.flag[41:].all()  # two days of a 10-sigma drop are beyond h = 5
    # the onset is where the excursion began: the shift, or a noise point just before it
    assert ts[35] <= result.onset[45] <= ts[40]
    assert result.baseline[45] == pytest.approx(100, abs=2)
    # the shifted points did not become the baseline while flagged
    assert np.median(state.history) == pytest.approx(100, abs=2)


def test_incremental_calls_give_the_same_output_as_one() -> None:
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(5, 1, 30), rng.normal(9, 1, 10)])
    ts = np.arange(40) * 3600.0
    whole, _ = detect_series(ts, values)
    state = None
    parts = []
    for lo in range(0, 40, 7):
        part, state = detect_series(ts[lo : lo + 7], values[lo : lo + 7], state)
        parts.append(part)
    assert np.array_equal(np.concatenate([p.flag for p in parts]), whole.flag)
    assert np.allclose(np.concatenate([p.cusum for p in parts]), whole.cusum)
    with pytest.raises(ValueError, match="after the state"):
        detect_series(ts[:1], values[:1], state)


def test_no_verdict_without_history_and_nan_points_change_nothing() -> None:
    result, state = detect_series(np.arange(5.0), np.array([1.0, 50.0, np.nan, 1.0, 99.0]))
    assert np.isnan(result.z).all() and not result.flag.any()
    assert state.history == [1.0, 50.0, 1.0, 99.0]


def test_hour_of_week_seasonality_keeps_a_weekly_peak_from_alarming() -> None:
    rng = np.random.default_rng(5)
    hours = np.arange(6 * 168)
    peak = (hours % 168) == 33  # Tuesday 09:00 UTC, every week
    values = rng.normal(10, 1, len(hours)) + np.where(peak, 15.0, 0.0)
    ts = hours * 3600.0
    params = DetectParams(window=28, min_history=7, min_bucket=4)
    flat, _ = detect_series(ts, values, params=params)
    seasonal, _ = detect_series(
        ts, values, params=DetectParams(window=28, min_history=7, min_bucket=4, seasonal=True)
    )
    last_weeks = hours >= 5 * 168  # by then each hour-of-week bucket has 5 weeks of history
    assert flat.flag[peak & last_weeks].any()
    assert not seasonal.flag[last_weeks].any()


def test_cusum_vectorised_matches_the_recursion() -> None:
    z = np.array([[0.0, 2.0, 2.0, -5.0, np.nan, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    s, flags = cusum(z, k=0.5, h=2.0)
    expected0 = [0.0, 1.5, 3.0, 0.0, 0.0, 2.5]
    expected1 = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert s.tolist() == [expected0, expected1]
    assert flags.tolist() == [[x > 2.0 for x in expected0], [x > 2.0 for x in expected1]]
    one, _ = cusum(z[1], k=0.5, h=2.0)
    assert one.shape == (6,)


def test_rate_ratio_test_by_hand() -> None:
    ratio, z = rate_ratio_test(20, 100.0, 10, 200.0)
    expected = (20.5 / 100) / (10.5 / 200)
    assert float(ratio) == pytest.approx(expected)
    # 30 events; under equal rates A would hold 100/300 of them: 10 +- sqrt(30 * 1/3 * 2/3)
    assert float(z) == pytest.approx((20 - 0.5 - 10) / math.sqrt(30 * (1 / 3) * (2 / 3)))
    _, z0 = rate_ratio_test(0, 0.0, 1, 10.0)
    assert math.isnan(float(z0))


def test_mean_difference_test_by_hand() -> None:
    diff, z = mean_difference_test(50.0, 100.0, 25, 60.0, 64.0, 16)
    assert float(diff) == -10.0
    assert float(z) == pytest.approx(-10.0 / math.sqrt(100 / 25 + 64 / 16))
    _, small = mean_difference_test(1.0, 1.0, 1, 2.0, 1.0, 10)
    assert math.isnan(float(small))


def test_robust_z_uses_median_and_mad() -> None:
    history = np.array([[1.0, 2.0, 3.0, 4.0, 100.0], [np.nan] * 5])
    z = robust_z([5.0, 1.0], history)
    # median 3, MAD = median(|-2, -1, 0, 1, 97|) = 1 -> sigma 1.4826
    assert z[0] == pytest.approx(2 / 1.4826)
    assert math.isnan(z[1])


def test_overlap() -> None:
    assert overlap(["a", "b", "c", "d"], ["a", "b", "x"]) == (0.5, 2 / 3, 2 / 5)
    assert overlap([], ["a"]) == (0.0, 0.0, 0.0)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        DetectParams(direction=0)
    with pytest.raises(ValueError, match="increasing"):
        detect_series([2.0, 1.0], [1.0, 1.0])
