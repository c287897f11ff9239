"""Apdex classification and score."""

from __future__ import annotations

import numpy as np
import pytest

from scoring import FRUSTRATED, SATISFIED, TOLERATING, apdex, classify


def test_classify_boundaries_and_missing() -> None:
    classes = classify([10.0, 10.0001, 40.0, 40.1, np.nan], threshold=10.0)
    assert classes.tolist() == [SATISFIED, TOLERATING, TOLERATING, FRUSTRATED, -1]


def test_per_sample_thresholds_broadcast() -> None:
    classes = classify([30.0, 30.0], threshold=[30.0, 5.0], frustrating=[60.0, 20.0])
    assert classes.tolist() == [SATISFIED, FRUSTRATED]


def test_apdex_score_ignores_missing() -> None:
    classes = classify([1, 2, 5, 50, np.nan], threshold=2.0)  # S S T F -
    assert apdex(classes) == pytest.approx((2 + 0.5) / 4)
    assert np.isnan(apdex(classify([np.nan], threshold=1.0)))


def test_apdex_along_axis() -> None:
    classes = classify(np.array([[1.0, 100.0], [1.0, 1.0]]), threshold=2.0)
    assert apdex(classes, axis=1).tolist() == [0.5, 1.0]


def test_bad_thresholds_rejected() -> None:
    with pytest.raises(ValueError):
        classify([1.0], threshold=0.0)
    with pytest.raises(ValueError):
        classify([1.0], threshold=5.0, frustrating=2.0)
