"""scoring.xla: per-device period values, compliance, SLA figures and the quadrant.

Each expected figure is worked out by hand (or by a plain loop) in the test itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.xla import (
    INSUFFICIENT,
    MET,
    MISSED,
    SlaTarget,
    XlaTarget,
    device_period_values,
    evaluate,
    good_days,
    lead_time_figures,
    period_values_from_totals,
    sla_figures,
    watermelon,
)


def test_device_values_are_means_of_valued_days_and_need_min_days() -> None:
    """NaN days do not count; a device with too few valued days gets NaN."""
    device = [0, 0, 0, 1, 1, 2]
    value = [80.0, 60.0, math.nan, 90.0, 70.0, 50.0]
    means, days = device_period_values(device, value, 4, min_days=2)
    assert days.tolist() == [2, 2, 1, 0]
    assert means[0] == pytest.approx(70.0)
    assert means[1] == pytest.approx(80.0)
    assert math.isnan(means[2]) and math.isnan(means[3])


def test_device_share_target_counts_devices_on_target() -> None:
    """7 of 10 devices ≥ 70 is 70 %: met against 70 %, missed against 80 %."""
    values = np.array([75, 80, 90, 70, 71, 99, 100, 10, 69.9, 20], dtype=float)
    met = evaluate(values, 10, XlaTarget(">=", 70.0, share_target_pct=70.0))
    assert met.status == MET
    assert met.value == pytest.approx(70.0) and met.margin == pytest.approx(0.0)
    missed = evaluate(values, 10, XlaTarget(">=", 70.0, share_target_pct=80.0))
    assert missed.status == MISSED and missed.margin == pytest.approx(-10.0)
    assert missed.mean_value == pytest.approx(float(values.mean()))
    assert missed.coverage_pct == pytest.approx(100.0)


def test_lower_is_better_targets_compare_the_other_way() -> None:
    """Minutes lost: 4 of 5 devices ≤ 15 is 80 %, met against 80 %."""
    values = np.array([5.0, 10.0, 20.0, 14.0, 15.0])
    share = evaluate(values, 5, XlaTarget("<=", 15.0, share_target_pct=80.0, min_devices=5))
    assert share.status == MET and share.value == pytest.approx(80.0)


def test_mean_target_margin_sign() -> None:
    """A mean of 12.8 against ≤ 12 is missed by 0.8; against ≥ 12 met by 0.8."""
    values = np.array([5.0, 10.0, 20.0, 14.0, 15.0])
    lower = evaluate(values, 5, XlaTarget("<=", 12.0))
    assert lower.status == MISSED and lower.margin == pytest.approx(-0.8)
    higher = evaluate(values, 5, XlaTarget(">=", 12.0))
    assert higher.status == MET and higher.margin == pytest.approx(0.8)


def test_not_enough_devices_coverage_or_answers() -> None:
    """Each minimum, when not reached, gives not-enough-data with its reason."""
    few = evaluate([90.0, 95.0], 2, XlaTarget(">=", 70.0, 90.0, min_devices=5))
    assert few.status == INSUFFICIENT and "2 devices counted" in few.reason
    values = [90.0] * 5 + [math.nan] * 15
    low = evaluate(values, 20, XlaTarget(">=", 70.0, 90.0, min_coverage_pct=50.0))
    assert low.status == INSUFFICIENT and low.coverage_pct == pytest.approx(25.0)
    assert "coverage 25 %" in low.reason
    quiet = evaluate([80.0] * 6, 6, XlaTarget(">=", 65.0, min_responses=10), responses=7)
    assert quiet.status == INSUFFICIENT and "7 survey answers" in quiet.reason
    none = evaluate([], 0, XlaTarget(">=", 70.0))
    assert none.status == INSUFFICIENT and math.isnan(none.value)


def test_good_days_turn_metric_scores_into_a_good_share() -> None:
    """Scores ≥ 85 count as good days; a device's mean of them is its good-share."""
    g = good_days([90.0, 85.0, 84.9, math.nan, 20.0])
    assert g[:3].tolist() == [100.0, 100.0, 0.0] and math.isnan(g[3]) and g[4] == 0.0
    means, _ = device_period_values([0, 0, 0, 0, 0], g, 1)
    assert means[0] == pytest.approx(50.0)


def test_sla_figures_against_a_hand_count() -> None:
    """5 tickets: 3 resolved within 8 h, 1 later, 1 open; FCR known for 4."""
    hours = [0.5, 2.0, 7.9, 30.0, math.nan]
    fcr = [1.0, 1.0, 0.0, 0.0, math.nan]
    sla = sla_figures(hours, fcr, SlaTarget(8.0, 70.0, fcr_target_pct=40.0))
    assert sla.tickets == 5 and sla.resolved == 4
    assert sla.within_target_pct == pytest.approx(75.0)
    assert sla.median_resolve_h == pytest.approx((2.0 + 7.9) / 2)
    assert sla.fcr_pct == pytest.approx(50.0) and sla.fcr_known == 4
    assert sla.status == MET
    strict = sla_figures(hours, fcr, SlaTarget(8.0, 90.0, fcr_target_pct=60.0))
    assert strict.status == MISSED
    assert "75 % resolved within 8 h" in strict.reason and "first-contact" in strict.reason
    assert sla_figures([math.nan], [math.nan], SlaTarget()).status == INSUFFICIENT


@pytest.mark.parametrize(
    ("sla", "xla", "quadrant"),
    [
        (MET, MISSED, "watermelon"),
        (MET, MET, "green"),
        (MISSED, MISSED, "red"),
        (MISSED, MET, "xla_only"),
        (INSUFFICIENT, MET, "unknown"),
        (MET, INSUFFICIENT, "unknown"),
    ],
)
def test_watermelon_quadrants(sla: str, xla: str, quadrant: str) -> None:
    """SLA green and XLA red is the watermelon."""
    assert watermelon(sla, xla) == quadrant


def test_lead_times_and_time_lost_avoided() -> None:
    """Alert 1 is 10 h ahead of its ticket, alert 2 2 h behind, alert 3 has none."""
    detected = [100.0, 200.0, 300.0]
    tickets = [110.0, 198.0, math.nan]
    f = lead_time_figures(detected, tickets, affected=[4, 9, 2], excess_min_per_day=[30, 5, 1])
    assert f["alerts"] == 3 and f["alerts_with_ticket"] == 2
    assert f["detected_before_ticket"] == 1
    assert f["detected_before_ticket_pct"] == pytest.approx(50.0)
    assert f["median_lead_h"] == pytest.approx(10.0)
    # only alert 1 counts: 10 h = 10/24 days, 4 devices, 30 min/day above baseline
    assert f["time_lost_avoided_h"] == pytest.approx(10 / 24 * 4 * 30 / 60)
    empty = lead_time_figures([], [])
    assert empty["alerts"] == 0 and math.isnan(empty["median_lead_h"])


def test_no_counted_device_raises_no_numpy_warning() -> None:
    """An empty period is not enough data, silently (warnings are errors here)."""
    for share in (None, 80.0):
        result = evaluate([math.nan, math.nan], 2, XlaTarget(">=", 70.0, share))
        assert result.status == INSUFFICIENT and math.isnan(result.value)


def test_totals_give_the_same_values_as_the_rows() -> None:
    """Per-device sums and counts (as SQL returns them) equal the row-wise means; weights
    average day means by their number of answers."""
    rng = np.random.default_rng(3)
    device = rng.integers(0, 20, 400)
    value = np.where(rng.random(400) < 0.1, np.nan, rng.uniform(0, 100, 400))
    rows, _ = device_period_values(device, value, 20, min_days=15)
    keep = ~np.isnan(value)
    sums = np.bincount(device[keep], weights=value[keep], minlength=20)
    counts = np.bincount(device[keep], minlength=20)
    totals = period_values_from_totals(sums, counts, counts, min_days=15)
    np.testing.assert_allclose(totals, rows, equal_nan=True)
    assert np.isnan(totals).any() and (~np.isnan(totals)).any()
    # two days: 3 answers averaging 80, 1 answer of 40 -> (3*80 + 40) / 4 = 70
    weighted = period_values_from_totals([3 * 80 + 40], [4], [2])
    assert weighted[0] == pytest.approx(70.0)
