"""Sub-scores, totals (re-normalised weights, minimum data) and rolling windows."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import DeviceDayInputs
from scoring.personas import DEFAULT_PERSONAS, METRICS, SUBSCORES, persona_arrays
from scoring.score import (
    effective_weights,
    rolling_mean,
    score_device_days,
    subscore_weights,
    subscores,
    total_score,
)

P = persona_arrays()
M = {m: j for j, m in enumerate(METRICS)}
S = {s: k for k, s in enumerate(SUBSCORES)}


def _row(**scores: float) -> np.ndarray:
    row = np.full((1, len(METRICS)), np.nan)
    for name, value in scores.items():
        row[0, M[name]] = value
    return row


def test_subscore_is_weighted_mean_of_present_metrics() -> None:
    # stability: app_crash_rate (weight 2) 50, system_crash_rate (weight 3) 100 -> 80
    subs = subscores(_row(app_crash_rate=50.0, system_crash_rate=100.0), [0], P)
    assert subs[0, S["stability"]] == 80.0
    assert np.isnan(subs[0, [S["startup"], S["responsiveness"], S["sentiment"]]]).all()
    # a missing metric drops out: only the crash rate present -> its own score
    assert subscores(_row(app_crash_rate=50.0), [0], P)[0, S["stability"]] == 50.0


def test_total_renormalises_over_present_subscores() -> None:
    metrics = _row(boot=40.0, app_crash_rate=100.0)  # startup 40, stability 100
    subs = subscores(metrics, [0], P)
    w = subscore_weights(subs, [0], P, [np.nan])
    kw = DEFAULT_PERSONAS[0].subscore_weights
    expected = (kw["startup"] * 40 + kw["stability"] * 100) / (kw["startup"] + kw["stability"])
    assert total_score(subs, w)[0] == pytest.approx(expected)
    assert w.sum() == pytest.approx(1.0)


def test_total_needs_min_subscores() -> None:
    subs = subscores(_row(boot=40.0, logon=60.0), [0], P)  # startup only; KW needs 2
    w = subscore_weights(subs, [0], P, [np.nan])
    assert (w == 0).all()
    assert np.isnan(total_score(subs, w)[0])


def test_sentiment_weight_scaled_by_response_rate() -> None:
    subs = subscores(_row(boot=0.0, sentiment=100.0), [0], P)
    kw = DEFAULT_PERSONAS[0].subscore_weights
    for confidence in (1.0, 0.1):
        w = subscore_weights(subs, [0], P, [confidence])
        ws = kw["sentiment"] * confidence
        assert total_score(subs, w)[0] == pytest.approx(100 * ws / (ws + kw["startup"]))


def test_effective_weights_reproduce_the_total() -> None:
    rng = np.random.default_rng(3)
    metrics = rng.uniform(0, 100, (200, len(METRICS)))
    metrics[rng.random(metrics.shape) < 0.4] = np.nan
    persona = rng.integers(0, len(DEFAULT_PERSONAS), 200)
    conf = rng.uniform(0, 1, 200)
    subs = subscores(metrics, persona, P)
    total = total_score(subs, subscore_weights(subs, persona, P, conf))
    e = effective_weights(metrics, persona, P, conf)
    has = ~np.isnan(total)
    assert has.sum() > 100
    np.testing.assert_allclose(e[has].sum(axis=1), 1.0)
    np.testing.assert_allclose((e * np.nan_to_num(metrics)).sum(axis=1)[has], total[has])
    assert (e[~has] == 0).all()
    assert (e[np.isnan(metrics)] == 0).all()


def test_score_device_days_end_to_end_and_grid() -> None:
    inputs = DeviceDayInputs(
        n_devices=2,
        n_days=2,
        persona=np.array([0, 1]),
        boot_s=np.array([30.0, 200.0]),
        boot_group=np.array([0, 3]),
        resource_group=np.array([0, 3]),
        interval_s=np.array([3600.0, 3600.0]),
    )
    result = score_device_days(inputs, P)
    assert result.total.shape == (4,)
    assert result.grid(result.total).shape == (2, 2)
    assert result.total[0] == pytest.approx(100.0)  # boot good, no hang/crash in an hour
    assert np.isnan(result.total[[1, 2]]).all()  # no data at all
    # developer: boot 200 s against T=120 -> tolerating -> startup 50; stability 100;
    # responsiveness 100 (no hang in an hour)
    w = DEFAULT_PERSONAS[1].subscore_weights
    expected = (w["startup"] * 50 + w["responsiveness"] * 100 + w["stability"] * 100) / (
        w["startup"] + w["responsiveness"] + w["stability"]
    )
    assert result.total[3] == pytest.approx(expected)


def _naive_rolling(values: np.ndarray, window: int, min_count: int) -> np.ndarray:
    out = np.full(values.shape, np.nan)
    for i in range(values.shape[0]):
        for d in range(values.shape[1]):
            chunk = values[i, max(0, d - window + 1) : d + 1]
            chunk = chunk[~np.isnan(chunk)]
            if len(chunk) >= min_count:
                out[i, d] = chunk.mean()
    return out


@pytest.mark.parametrize(("window", "min_count"), [(1, 1), (7, 1), (7, 3), (28, 1), (40, 2)])
def test_rolling_mean_matches_a_naive_loop(window: int, min_count: int) -> None:
    rng = np.random.default_rng(window * 10 + min_count)
    values = rng.uniform(0, 100, (13, 35))
    values[rng.random(values.shape) < 0.35] = np.nan
    np.testing.assert_allclose(
        rolling_mean(values, window, min_count), _naive_rolling(values, window, min_count)
    )


def test_rolling_mean_rejects_empty_window() -> None:
    with pytest.raises(ValueError):
        rolling_mean(np.zeros((1, 3)), 0)
