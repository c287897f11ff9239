"""Per-label aggregates and bands."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.aggregate import aggregate, group_means


def test_aggregate_bands_counts_and_minimum() -> None:
    scores = [90.0, 70.0, 69.9, 50.0, 49.9, np.nan, 80.0, 10.0]
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    agg = aggregate(scores, labels, 3, min_devices=2)
    assert agg.count.tolist() == [5, 2, 0]
    assert agg.enough.tolist() == [True, True, False]
    assert agg.mean[0] == pytest.approx((90 + 70 + 69.9 + 50 + 49.9) / 5)
    assert agg.share_good[0] == pytest.approx(2 / 5)  # ≥ 70
    assert agg.share_tolerating[0] == pytest.approx(2 / 5)  # 50 … < 70
    assert agg.share_frustrating[0] == pytest.approx(1 / 5)  # < 50
    assert agg.mean[1] == 45.0
    assert np.isnan(agg.mean[2]) and np.isnan(agg.share_good[2])
    small = aggregate(scores, labels, 3)  # default minimum 5 devices
    assert small.enough.tolist() == [True, False, False]
    assert np.isnan(small.mean[1])


def test_group_means_nan_aware_1d_and_2d() -> None:
    assert group_means([1.0, 3.0, np.nan, 5.0], [0, 0, 1, 1], 3)[:2].tolist() == [2.0, 5.0]
    m = group_means(np.array([[1.0, np.nan], [3.0, 4.0]]), [0, 0], 1)
    assert m.tolist() == [[2.0, 4.0]]
