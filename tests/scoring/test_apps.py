"""Per-application scores of (device-day, app) pairs, checked against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.apps import APP_METRICS, app_pair_scores
from scoring.metrics import DeviceDayInputs
from scoring.personas import persona_arrays


def _inputs() -> DeviceDayInputs:
    # one knowledge worker (persona 0), two days; day 0 has 8 active hours, day 1 only 10 min
    return DeviceDayInputs(
        n_devices=1,
        n_days=2,
        persona=np.array([0]),
        hang_s=np.array([20.0, 50.0]),
        hang_group=np.array([0, 1]),
        hang_app=np.array([0, 0]),  # app 0 hangs 20 s on day 0 (tolerating: T=10, F=40)
        crash_group=np.array([0]),
        crash_app=np.array([1]),  # app 1 crashes once on day 0
        resource_group=np.array([0] * 8 + [1]),
        interval_s=np.array([3600.0] * 8 + [600.0]),
    )


def test_pairs_scored_on_their_own_events_against_the_persona() -> None:
    inputs = _inputs()
    active = np.array([8 * 3600.0, 600.0])
    pairs = app_pair_scores(inputs, persona_arrays(), active, [0, 0, 1], [0, 2, 2])
    # pairs, sorted by (device-day, app): (0,0) (0,1) (0,2) (1,0) (1,2)
    assert pairs.group.tolist() == [0, 0, 0, 1, 1]
    assert pairs.app.tolist() == [0, 1, 2, 0, 2]
    col = {m: j for j, m in enumerate(APP_METRICS)}
    # app 0, day 0: 1 hang in 8 h = 0.125/h, KW good 0, frustrating 0.5 -> 75;
    # hang duration tolerating -> Apdex 50; no crash -> 100. Weights 2, 1, 2.
    assert pairs.metrics[0, col["app_hang_rate"]] == pytest.approx(75.0)
    assert pairs.metrics[0, col["hang_duration"]] == pytest.approx(50.0)
    assert pairs.metrics[0, col["app_crash_rate"]] == pytest.approx(100.0)
    assert pairs.score[0] == pytest.approx((2 * 75 + 50 + 2 * 100) / 5)
    # app 1: 1 crash in 8 h = 0.125/h against frustrating 0.25 -> 50; no hang: 100, no length
    assert np.isnan(pairs.metrics[1, col["hang_duration"]])
    assert pairs.score[1] == pytest.approx((2 * 100 + 2 * 50) / 4)
    # app 2 only used resources: a clean day is evidence, 100
    assert pairs.score[2] == pytest.approx(100.0)
    # day 1: 10 active minutes are below min_active_s, so no rate is scored; app 0's measured
    # 50 s hang (frustrating, > F = 40 s) still is, as on the device level; app 2: nothing
    assert np.isnan(pairs.metrics[3, col["app_hang_rate"]])
    assert pairs.score[3] == 0.0
    assert np.isnan(pairs.score[4])
    assert pairs.hangs.tolist() == [1, 0, 0, 1, 0]
    assert pairs.crashes.tolist() == [0, 1, 0, 0, 0]
    # minutes: the hang's own length; the crash the persona's cost (5 min)
    assert pairs.time_lost_min.tolist() == pytest.approx([20 / 60, 5.0, 0.0, 50 / 60, 0.0])


def test_no_apps_no_pairs() -> None:
    inputs = DeviceDayInputs(n_devices=1, n_days=1, persona=np.array([0]))
    pairs = app_pair_scores(inputs, persona_arrays(), np.zeros(1), [], [])
    assert len(pairs.group) == 0 and pairs.metrics.shape == (0, len(APP_METRICS))
