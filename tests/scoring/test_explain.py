"""Top contributors and their per-app split."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.explain import app_contributors, points_lost, top_contributors
from scoring.metrics import DeviceDayInputs
from scoring.personas import METRICS, persona_arrays
from scoring.score import score_device_days

P = persona_arrays()


def _inputs() -> DeviceDayInputs:
    return DeviceDayInputs(
        n_devices=2,
        n_days=1,
        persona=np.array([0, 0]),
        boot_s=np.array([500.0, 30.0]),
        boot_group=np.array([0, 1]),
        hang_s=np.array([100.0, 100.0, 5.0, 1.0]),
        hang_group=np.array([0, 0, 0, 1]),
        hang_app=np.array([7, 7, 3, 3]),
        crash_group=np.array([0]),
        crash_app=np.array([3]),
        resource_group=np.array([0, 1]),
        interval_s=np.array([8 * 3600.0, 8 * 3600.0]),
    )


def test_points_lost_sum_to_the_gap_and_order_is_worst_first() -> None:
    inputs = _inputs()
    result = score_device_days(inputs, P)
    lost = points_lost(result.metrics.scores, [0, 0], P, result.metrics.sentiment_confidence)
    np.testing.assert_allclose(lost.sum(axis=1), 100 - result.total)
    top = top_contributors(lost, result.metrics.scores, [0, 1], k=3)
    row0 = top[top["row"] == 0]
    assert row0["rank"].tolist() == [0, 1, 2]
    assert (np.diff(row0["points_lost"]) <= 0).all()
    assert METRICS[row0["metric"][0]] == "boot"  # 500 s boot: frustrated, the largest loss
    assert (top["points_lost"] > 0).all()
    # row 1: boot good, one short hang in 8 h: only the hang rate costs anything
    assert [METRICS[m] for m in top[top["row"] == 1]["metric"]] == ["app_hang_rate"]
    assert top.tolist()  # plain Python records for JSON


def test_app_contributors_split_app_metrics_exactly() -> None:
    inputs = _inputs()
    result = score_device_days(inputs, P)
    lost = points_lost(result.metrics.scores, [0, 0], P, result.metrics.sentiment_confidence)
    apps = app_contributors([1, 0], lost[::-1], inputs, P)  # any order of groups
    assert (np.diff(apps["row"]) >= 0).all()
    for row in (0, 1):
        mine = apps[apps["row"] == row]
        assert (np.diff(mine["points_lost"]) <= 0).all()
        for metric in ("app_hang_rate", "hang_duration", "app_crash_rate"):
            j = METRICS.index(metric)
            total = mine[mine["metric"] == j]["points_lost"].sum()
            assert total == pytest.approx(lost[row, j])
    row0 = apps[apps["row"] == 0]
    rate = row0[row0["metric"] == METRICS.index("app_hang_rate")]
    assert dict(zip(rate["app"].tolist(), rate["points_lost"].tolist(), strict=True)) == (
        pytest.approx(
            {
                7: lost[0, METRICS.index("app_hang_rate")] * 2 / 3,
                3: lost[0, METRICS.index("app_hang_rate")] / 3,
            }
        )
    )
    # the hang-duration loss is all app 7's (its hangs are frustrated; app 3's 5 s is good)
    dur = row0[row0["metric"] == METRICS.index("hang_duration")]
    assert dur["app"].tolist() == [7]


def test_explanations_are_deterministic() -> None:
    inputs = _inputs()
    a = score_device_days(inputs, P)
    b = score_device_days(inputs, P)
    np.testing.assert_array_equal(a.metrics.scores, b.metrics.scores)
    la = points_lost(a.metrics.scores, [0, 0], P, a.metrics.sentiment_confidence)
    lb = points_lost(b.metrics.scores, [0, 0], P, b.metrics.sentiment_confidence)
    ta = app_contributors([0, 1], la, inputs, P)
    tb = app_contributors([0, 1], lb, inputs, P)
    assert ta.tobytes() == tb.tobytes()
