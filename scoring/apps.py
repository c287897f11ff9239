"""Per-application scores of device-days: how well each app behaved where it was used.

A *pair* is one (device-day, app) where the app was present — it reported resource use
(``app_resource``) or an event (a hang or a crash). Each pair is scored on the app's own
events only, with the device's persona and the device-day's active time as exposure:

* ``app_hang_rate`` and ``app_crash_rate``: the app's events per active hour, linear between
  the persona's good and frustrating levels (:func:`scoring.metrics.rate_scores`);
* ``hang_duration``: Apdex of the app's hang lengths (NaN without a measured hang).

The pair's score is the metric-weighted mean of the metrics present (persona metric
weights, re-normalised); NaN when none is (too little active time for a rate, and no
measured hang), exactly as the device-level metrics treat missing data. Averaging
pairs per app (:func:`scoring.aggregate.aggregate`) gives the app-level score: "of the
device-days where Teams ran, how good was Teams". Pure numpy, no I/O (docs/scoring.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from scoring.metrics import DeviceDayInputs, duration_scores, rate_scores
from scoring.personas import METRICS, PersonaArrays

__all__ = ["APP_METRICS", "AppPairs", "app_pair_scores"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

APP_METRICS: Final[tuple[str, ...]] = ("app_hang_rate", "hang_duration", "app_crash_rate")
"""The metrics an app is scored on (its own events only)."""


@dataclass(frozen=True)
class AppPairs:
    """One row per (device-day, app) pair where the app was present, sorted by (group, app)."""

    group: Ints
    app: Ints
    score: Floats
    """0-100, NaN = nothing to score (too little active time, no measured hang)."""
    metrics: Floats
    """(P, 3) scores in :data:`APP_METRICS` order."""
    hangs: npt.NDArray[np.int64]
    crashes: npt.NDArray[np.int64]
    time_lost_min: Floats
    """Minutes lost to the app's hangs (their length, or the persona's default) and crashes."""


def app_pair_scores(
    inputs: DeviceDayInputs,
    params: PersonaArrays,
    active_s: npt.ArrayLike,
    present_group: npt.ArrayLike,
    present_app: npt.ArrayLike,
) -> AppPairs:
    """Score every (device-day, app) pair present in ``present_*``, hangs or crashes.

    ``active_s`` is (G,) active seconds per device-day (``MetricScores.active_s``);
    ``present_group`` / ``present_app`` list where apps were seen using resources (repeats
    are fine). Hang and crash events add their pairs too.
    """
    active = np.asarray(active_s, dtype=np.float64)
    hang_g = np.asarray(inputs.hang_group, dtype=np.intp)
    hang_a = np.asarray(inputs.hang_app, dtype=np.intp)
    crash_g = np.asarray(inputs.crash_group, dtype=np.intp)
    crash_a = np.asarray(inputs.crash_app, dtype=np.intp)
    all_g = np.concatenate([np.asarray(present_group, dtype=np.intp), hang_g, crash_g])
    all_a = np.concatenate([np.asarray(present_app, dtype=np.intp), hang_a, crash_a])
    n_apps = int(all_a.max()) + 1 if len(all_a) else 1
    key = all_g.astype(np.int64) * n_apps + all_a
    pairs = np.unique(key)
    n = len(pairs)
    group = (pairs // n_apps).astype(np.intp)
    app = (pairs % n_apps).astype(np.intp)
    hang_p = np.searchsorted(pairs, hang_g.astype(np.int64) * n_apps + hang_a)
    crash_p = np.searchsorted(pairs, crash_g.astype(np.int64) * n_apps + crash_a)

    persona = inputs.persona_of_group()[group]
    col = {m: METRICS.index(m) for m in APP_METRICS}
    min_active = params.min_active_s[persona]
    out = np.full((n, len(APP_METRICS)), np.nan)
    for k, (metric, events) in enumerate(
        (("app_hang_rate", hang_p), ("hang_duration", None), ("app_crash_rate", crash_p))
    ):
        j = col[metric]
        if events is None:
            p_of_hang = persona[hang_p]
            out[:, k] = duration_scores(
                inputs.hang_s,
                hang_p,
                n,
                params.threshold[p_of_hang, j],
                params.frustrating[p_of_hang, j],
                params.min_samples[persona],
            )[0]
        else:
            out[:, k] = rate_scores(
                events,
                n,
                active[group],
                params.threshold[persona, j],
                params.frustrating[persona, j],
                min_active,
            )[0]
    weights = params.metric_weight[persona][:, [col[m] for m in APP_METRICS]]
    present = ~np.isnan(out)
    w = np.where(present, weights, 0.0)
    wsum = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(wsum > 0, (w * np.nan_to_num(out)).sum(axis=1) / wsum, np.nan)
    hang_min = (
        np.where(
            np.isnan(inputs.hang_s),
            params.hang_default_s[persona[hang_p]],
            np.asarray(inputs.hang_s, dtype=np.float64),
        )
        / 60.0
    )
    lost = np.bincount(hang_p, weights=hang_min, minlength=n) + np.bincount(
        crash_p, weights=params.app_crash_cost_min[persona[crash_p]], minlength=n
    )
    return AppPairs(
        group=group,
        app=app,
        score=np.asarray(score, dtype=np.float64),
        metrics=out,
        hangs=np.bincount(hang_p, minlength=n).astype(np.int64),
        crashes=np.bincount(crash_p, minlength=n).astype(np.int64),
        time_lost_min=np.asarray(lost, dtype=np.float64),
    )
