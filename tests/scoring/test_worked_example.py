"""The worked example of docs/scoring.md, built exactly as documented.

One knowledge worker's device-day: two boots, three sign-ins, three app hangs (one of
unknown length), one app crash, eight hours of resource samples with some pressure, no web
probe, and three survey prompts (two answered, one dismissed). Every asserted number is the
one printed in the document.
"""

from __future__ import annotations

import numpy as np
import pytest

from dexscope.wire import SURVEY_OUTCOMES
from scoring.explain import app_contributors, points_lost, top_contributors
from scoring.metrics import QUESTION_TYPES, DeviceDayInputs, survey_to_100
from scoring.personas import METRICS, SUBSCORES, persona_arrays
from scoring.score import score_device_days
from scoring.time_lost import COMPONENTS, time_lost

OUTLOOK, TEAMS = 0, 1


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.intp)


def _inputs() -> DeviceDayInputs:
    answered, dismissed = SURVEY_OUTCOMES.index("answered"), SURVEY_OUTCOMES.index("dismissed")
    stars, nps = QUESTION_TYPES.index("stars"), QUESTION_TYPES.index("nps")
    return DeviceDayInputs(
        n_devices=1,
        n_days=1,
        persona=_zeros(1),  # knowledge_worker
        boot_s=np.array([45.0, 150.0]),
        boot_group=_zeros(2),
        logon_s=np.array([20.0, 40.0, 130.0]),
        logon_group=_zeros(3),
        hang_s=np.array([8.0, 25.0, np.nan]),
        hang_group=_zeros(3),
        hang_app=np.array([OUTLOOK, TEAMS, OUTLOOK]),
        crash_group=_zeros(1),
        crash_app=np.array([TEAMS]),
        resource_group=_zeros(8),
        interval_s=np.full(8, 3600.0),
        cpu_pressure_s=np.full(8, 180.0),
        memory_pressure_s=np.full(8, 144.0),
        io_pressure_s=np.full(8, 540.0),
        survey_device=_zeros(3),
        survey_t_days=np.array([0.25, 0.5, 0.75]),  # 06:00, 12:00, 18:00
        survey_value_100=survey_to_100([4.0, np.nan, 9.0], [stars, stars, nps]),
        survey_outcome=np.array([answered, dismissed, answered]),
    )


METRIC_SCORES = {
    "boot": 75.0,
    "logon": 50.0,
    "hang_duration": 75.0,
    "probe_latency": np.nan,
    "app_hang_rate": 25.0,
    "app_crash_rate": 50.0,
    "system_crash_rate": 100.0,
    "probe_failure_rate": np.nan,
    "cpu_pressure": 100.0,
    "memory_pressure": 75.0,
    "io_pressure": 50.0,
    "sentiment": 82.69,
}
SUBSCORE_VALUES = {
    "startup": 62.5,
    "responsiveness": 58.33,
    "stability": 80.0,
    "sentiment": 82.69,
}
TOTAL = 68.84
POINTS_LOST = {  # worst first
    "app_hang_rate": 7.89,
    "logon": 6.58,
    "app_crash_rate": 6.32,
    "boot": 3.29,
    "io_pressure": 2.63,
    "sentiment": 1.82,
    "hang_duration": 1.32,
    "memory_pressure": 1.32,
}
TIME_LOST = {"boot": 1.5, "logon": 1.83, "hang": 0.63, "app_crash": 5.0, "system_crash": 0.0}


def test_worked_example_scores() -> None:
    result = score_device_days(_inputs(), persona_arrays())
    for j, metric in enumerate(METRICS):
        assert result.metrics.scores[0, j] == pytest.approx(
            METRIC_SCORES[metric], abs=0.005, nan_ok=True
        ), metric
    assert result.metrics.sentiment_confidence[0] == pytest.approx(2 / 3)
    for k, sub in enumerate(SUBSCORES):
        assert result.subscores[0, k] == pytest.approx(SUBSCORE_VALUES[sub], abs=0.005), sub
    assert result.total[0] == pytest.approx(TOTAL, abs=0.005)


def test_worked_example_time_lost() -> None:
    lost = time_lost(_inputs(), persona_arrays(), n_apps=2)
    for c, component in enumerate(COMPONENTS):
        assert lost.per_group[0, c] == pytest.approx(TIME_LOST[component], abs=0.005)
    assert lost.total[0] == pytest.approx(8.97, abs=0.005)
    np.testing.assert_allclose(lost.per_app, [[13 / 60, 0.0], [25 / 60, 5.0]])


def test_worked_example_explanation() -> None:
    inputs = _inputs()
    params = persona_arrays()
    result = score_device_days(inputs, params)
    lost = points_lost(result.metrics.scores, [0], params, result.metrics.sentiment_confidence)
    assert lost.sum() == pytest.approx(100 - result.total[0])
    top = top_contributors(lost, result.metrics.scores, [0], k=len(METRICS))
    assert [METRICS[m] for m in top["metric"]] == list(POINTS_LOST)
    assert top["points_lost"].tolist() == pytest.approx(list(POINTS_LOST.values()), abs=0.005)
    apps = app_contributors([0], lost, inputs, params)
    records = [
        (int(a), METRICS[m], round(float(p), 2))
        for a, m, p in zip(apps["app"], apps["metric"], apps["points_lost"], strict=True)
    ]
    assert records == [
        (TEAMS, "app_crash_rate", 6.32),
        (OUTLOOK, "app_hang_rate", 5.26),
        (TEAMS, "app_hang_rate", 2.63),
        (TEAMS, "hang_duration", 1.32),
    ]
