"""Aggregates of scores per group: any integer label (persona, app, device group, tenant).

For each label: the device count (scores that are not NaN), the mean score, and the share of
devices in each band — good (score ≥ 70), tolerating (50 ≤ score < 70), frustrating
(score < 50). A label with fewer than ``min_devices`` scored devices reports NaN ("not
enough data"): small groups are noisy and identify individuals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRUSTRATING_BELOW",
    "GOOD_AT",
    "MIN_DEVICES",
    "GroupAggregate",
    "aggregate",
    "group_means",
]

Floats = npt.NDArray[np.float64]

GOOD_AT: Final = 70.0
"""A score at or above this is in the good band."""
FRUSTRATING_BELOW: Final = 50.0
"""A score below this is in the frustrating band."""
MIN_DEVICES: Final = 5
"""Fewest scored devices a group needs before its aggregate is shown."""


@dataclass(frozen=True)
class GroupAggregate:
    """Per-label aggregate arrays, all of length ``n_labels``."""

    count: npt.NDArray[np.int64]
    """Scored (non-NaN) devices in the label."""
    mean: Floats
    share_good: Floats
    share_tolerating: Floats
    share_frustrating: Floats
    enough: npt.NDArray[np.bool_]
    """False where count < min_devices (the other arrays are NaN there)."""


def aggregate(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    n_labels: int,
    good_at: float = GOOD_AT,
    frustrating_below: float = FRUSTRATING_BELOW,
    min_devices: int = MIN_DEVICES,
) -> GroupAggregate:
    """Mean score and band shares of ``scores`` per label (NaN scores are not counted).

    ``scores`` and ``labels`` are parallel (one entry per device, or per device-app pair for
    an app view). Shares are fractions of the scored devices of the label.
    """
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.intp)
    present = ~np.isnan(s)
    s, lab = s[present], lab[present]
    count = np.bincount(lab, minlength=n_labels)
    total = np.bincount(lab, weights=s, minlength=n_labels)
    good = np.bincount(lab, weights=(s >= good_at).astype(np.float64), minlength=n_labels)
    bad = np.bincount(lab, weights=(s < frustrating_below).astype(np.float64), minlength=n_labels)
    enough = count >= min_devices
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(enough, count, np.nan)
        return GroupAggregate(
            count=count.astype(np.int64),
            mean=total / c,
            share_good=good / c,
            share_tolerating=(count - good - bad) / c,
            share_frustrating=bad / c,
            enough=enough,
        )


def group_means(values: npt.ArrayLike, labels: npt.ArrayLike, n_labels: int) -> Floats:
    """NaN-aware mean of ``values`` (R,) or (R, K) per label → (n_labels,) or (n_labels, K).

    Used to explain an aggregate: the mean points lost per metric over a label's devices.
    """
    v = np.asarray(values, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.intp)
    flat = v.reshape(v.shape[0], -1)
    present = ~np.isnan(flat)
    n_cols = flat.shape[1]
    idx = (lab[:, None] * n_cols + np.arange(n_cols)).ravel()
    size = n_labels * n_cols
    total = np.bincount(idx, weights=np.where(present, flat, 0.0).ravel(), minlength=size)
    count = np.bincount(idx, weights=present.ravel().astype(np.float64), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return np.asarray(mean.reshape((n_labels, *v.shape[1:])), dtype=np.float64)
