"""Apdex (open standard) classification and score, vectorised.

For a threshold T a sample is *satisfied* when ≤ T, *tolerating* when ≤ F (F = 4T unless
a frustrating threshold is given) and *frustrated* beyond. Apdex = (satisfied + tolerating/2)
/ total. NaN samples (no measurement) are not counted: missing data is never scored as good.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FRUSTRATED", "SATISFIED", "TOLERATING", "apdex", "classify"]

SATISFIED = np.int8(0)
TOLERATING = np.int8(1)
FRUSTRATED = np.int8(2)
_MISSING = np.int8(-1)


def classify(
    values: npt.ArrayLike,
    threshold: npt.ArrayLike,
    frustrating: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int8]:
    """Class of each sample: 0 satisfied, 1 tolerating, 2 frustrated, -1 missing (NaN).

    ``threshold`` and ``frustrating`` broadcast against ``values`` (e.g. one threshold per
    sample from its persona).
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(threshold, dtype=np.float64)
    f = 4.0 * t if frustrating is None else np.asarray(frustrating, dtype=np.float64)
    if np.any(t <= 0) or np.any(f < t):
        raise ValueError("thresholds must be positive and frustrating ≥ threshold")
    out = np.where(v <= t, SATISFIED, np.where(v <= f, TOLERATING, FRUSTRATED)).astype(np.int8)
    out[np.isnan(v)] = _MISSING
    return out


def apdex(classes: npt.ArrayLike, axis: int | None = None) -> npt.NDArray[np.float64]:
    """Apdex of classified samples along ``axis`` (NaN where there is no sample)."""
    c = np.asarray(classes, dtype=np.int8)
    satisfied = np.sum(c == SATISFIED, axis=axis)
    tolerating = np.sum(c == TOLERATING, axis=axis)
    total = np.sum(c >= 0, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((satisfied + tolerating / 2.0) / total, dtype=np.float64)
