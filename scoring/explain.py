"""Explanations: which metrics (and which apps) cost a device-day its points.

points lost by metric m = E_m · (100 - X_m), with E the effective weights of
:func:`scoring.score.effective_weights` (sub-score weight · metric weight after every
re-normalisation), so the points lost of a row sum to exactly 100 - its total. For the
app-level metrics (app hang rate, hang duration, app crash rate) a metric's points lost are
shared among the apps behind its events. Results are numpy structured arrays: ``.tolist()``
or a field-by-field dict gives the collector its JSON.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from scoring.apdex import SATISFIED, TOLERATING, classify
from scoring.metrics import DeviceDayInputs
from scoring.personas import METRICS, PersonaArrays
from scoring.score import effective_weights

__all__ = [
    "APP_CONTRIBUTOR_DTYPE",
    "CONTRIBUTOR_DTYPE",
    "app_contributors",
    "points_lost",
    "top_contributors",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

CONTRIBUTOR_DTYPE: Final = np.dtype(
    [
        ("row", np.int64),
        ("rank", np.int16),
        ("metric", np.int16),
        ("points_lost", np.float64),
        ("metric_score", np.float64),
    ]
)
"""One contributor: the row id (device-day or label), its rank (0 = worst), the metric
(index into METRICS), the points it cost and the metric's own score."""

APP_CONTRIBUTOR_DTYPE: Final = np.dtype(
    [("row", np.int64), ("app", np.int64), ("metric", np.int16), ("points_lost", np.float64)]
)
"""One app's share of an app-level metric's points lost on a device-day."""


def points_lost(
    metrics: Floats,
    persona: npt.ArrayLike,
    params: PersonaArrays,
    sentiment_confidence: npt.ArrayLike,
) -> Floats:
    """(R, M) points each metric cost its row: E_m · (100 - X_m), 0 where absent."""
    e = effective_weights(metrics, persona, params, sentiment_confidence)
    return np.asarray(e * (100.0 - np.nan_to_num(metrics, nan=100.0)), dtype=np.float64)


def top_contributors(
    lost: Floats, metrics: Floats, rows: npt.ArrayLike, k: int = 3
) -> npt.NDArray[np.void]:
    """The ``k`` metrics that cost each row most, worst first (ties: METRICS order).

    ``lost`` and ``metrics`` are (R, M) (from :func:`points_lost`); ``rows`` the R ids to
    report. Metrics that cost nothing are left out, so a perfect row has no record.
    """
    r = np.asarray(rows, dtype=np.int64)
    order = np.argsort(-lost, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(lost, order, axis=1)
    out = np.empty(order.shape, dtype=CONTRIBUTOR_DTYPE)
    out["row"] = r[:, None]
    out["rank"] = np.arange(order.shape[1])
    out["metric"] = order
    out["points_lost"] = top
    out["metric_score"] = np.take_along_axis(metrics, order, axis=1)
    return out[top > 0]


def app_contributors(
    groups: npt.ArrayLike,
    lost: Floats,
    inputs: DeviceDayInputs,
    params: PersonaArrays,
) -> npt.NDArray[np.void]:
    """Split the app-level metrics' points lost of the device-days ``groups`` among apps.

    ``lost`` is (R, M) for the R device-days in ``groups`` (sorted or not). app_hang_rate and
    app_crash_rate are shared by each app's number of events; hang_duration by each hang's
    Apdex penalty (1 frustrated, ½ tolerating, 0 satisfied), which is exact. Records are
    sorted by row, then points lost (largest first); zero shares are left out.
    """
    g_sel = np.asarray(groups, dtype=np.intp)
    order = np.argsort(g_sel, kind="stable")
    sorted_g = g_sel[order]
    pg = inputs.persona_of_group()

    def position(event_group: Ints) -> tuple[Ints, npt.NDArray[np.bool_]]:
        i = np.searchsorted(sorted_g, event_group)
        i = np.minimum(i, max(len(sorted_g) - 1, 0))
        hit = (sorted_g[i] == event_group) if len(sorted_g) else np.zeros(len(i), bool)
        return order[i], hit

    hang_g = np.asarray(inputs.hang_group, dtype=np.intp)
    j_dur = METRICS.index("hang_duration")
    p = pg[hang_g]
    cls = classify(inputs.hang_s, params.threshold[p, j_dur], params.frustrating[p, j_dur])
    penalty = np.where(cls == SATISFIED, 0.0, np.where(cls == TOLERATING, 0.5, 1.0))
    penalty[cls < 0] = 0.0
    parts = []
    for metric, ev_group, ev_app, ev_weight in (
        ("app_hang_rate", hang_g, inputs.hang_app, np.ones(len(hang_g))),
        ("hang_duration", hang_g, inputs.hang_app, penalty),
        ("app_crash_rate", inputs.crash_group, inputs.crash_app, np.ones(len(inputs.crash_group))),
    ):
        row, hit = position(np.asarray(ev_group, dtype=np.intp))
        row, app, w = row[hit], np.asarray(ev_app, dtype=np.int64)[hit], ev_weight[hit]
        wsum = np.bincount(row, weights=w, minlength=len(g_sel))
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(wsum[row] > 0, w / wsum[row], 0.0)
        rec = np.zeros(len(row), dtype=APP_CONTRIBUTOR_DTYPE)
        rec["row"] = g_sel[row]
        rec["app"] = app
        rec["metric"] = METRICS.index(metric)
        rec["points_lost"] = lost[row, METRICS.index(metric)] * share
        parts.append(rec)
    rec = np.concatenate(parts)
    # one record per (row, app, metric): sum the events' shares
    key = np.stack([rec["row"], rec["app"], rec["metric"].astype(np.int64)])
    uniq, inverse = np.unique(key, axis=1, return_inverse=True)
    out = np.zeros(uniq.shape[1], dtype=APP_CONTRIBUTOR_DTYPE)
    out["row"], out["app"], out["metric"] = uniq[0], uniq[1], uniq[2]
    out["points_lost"] = np.bincount(
        inverse.ravel(), weights=rec["points_lost"], minlength=uniq.shape[1]
    )
    out = out[out["points_lost"] > 0]
    return out[np.lexsort((out["metric"], out["app"], -out["points_lost"], out["row"]))]
