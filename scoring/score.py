"""Device-day scores: four sub-scores, the persona-weighted total, rolling 7/28-day views.

Sub-score s = Σ v_m·X_m / Σ v_m over the metrics m of s that have a score X_m (v = the
persona's metric weights); total = Σ W_s·S_s / Σ W_s over the sub-scores present, with W the
persona's sub-score weights and the sentiment weight scaled by the device's survey response
rate. Missing metrics and sub-scores drop out and the weights re-normalise; a device-day with
fewer than the persona's ``min_subscores`` sub-scores has no total (NaN). Both are the same
thing as total = Σ E_m·X_m with the *effective weights* E of :func:`effective_weights`, which
the explanations reuse (points lost = E_m·(100 - X_m), summing to 100 - total).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.metrics import DeviceDayInputs, MetricScores, metric_scores
from scoring.personas import METRIC_SUBSCORE, SUBSCORES, PersonaArrays

__all__ = [
    "DeviceDayScores",
    "effective_weights",
    "rolling_mean",
    "score_device_days",
    "subscore_weights",
    "subscores",
    "total_score",
]

Floats = npt.NDArray[np.float64]
PersonaIds = npt.NDArray[np.integer[Any]]


def _persona_ids(persona: npt.ArrayLike) -> PersonaIds:
    """Persona ids as an integer array, kept narrow (int8 gathers are the fastest)."""
    p = np.asarray(persona)
    if not np.issubdtype(p.dtype, np.integer):
        p = p.astype(np.intp)
    return p


_SENTIMENT = SUBSCORES.index("sentiment")


def _weighted_sums(
    metrics: Floats, persona: PersonaIds, params: PersonaArrays
) -> tuple[Floats, Floats]:
    """Per sub-score Σ v·X and Σ v over the present metrics, both (R, 4).

    A loop over the dozen metric columns (each a vectorised pass over all rows); fastest
    when ``metrics`` is Fortran-ordered, as :func:`scoring.metrics.metric_scores` makes it.
    """
    n_rows = metrics.shape[0]
    num = np.zeros((len(SUBSCORES), n_rows))
    den = np.zeros((len(SUBSCORES), n_rows))
    for m, s in enumerate(METRIC_SUBSCORE):
        x = metrics[:, m]
        present = ~np.isnan(x)
        w = params.metric_weight[:, m][persona]
        w *= present
        den[s] += w
        w *= np.where(present, x, 0.0)
        num[s] += w
    return num.T, den.T


def subscores(metrics: Floats, persona: npt.ArrayLike, params: PersonaArrays) -> Floats:
    """(R, 4) sub-scores: weighted mean of each sub-score's present metrics (NaN if none).

    S_s = Σ v_m·X_m / Σ v_m over the metrics m of s with a score (v: persona metric weights).
    """
    num, den = _weighted_sums(metrics, _persona_ids(persona), params)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def subscore_weights(
    subs: Floats,
    persona: npt.ArrayLike,
    params: PersonaArrays,
    sentiment_confidence: npt.ArrayLike,
) -> Floats:
    """(R, 4) normalised weight W'_s of each sub-score in the total (rows sum to 1 or 0).

    W'_s = W_s·c_s / Σ W·c over the present sub-scores, with W the persona's sub-score
    weights and c = 1 except c_sentiment = the survey response rate. Rows with fewer present
    sub-scores than the persona's ``min_subscores`` are all 0 (no total).
    """
    p = _persona_ids(persona)
    present = ~np.isnan(subs)
    w = np.zeros((len(SUBSCORES), len(p)))  # column by column: (R, 4) stays contiguous
    for s in range(len(SUBSCORES)):
        w[s] = np.where(present[:, s], params.subscore_weight[:, s][p], 0.0)
    w[_SENTIMENT] *= np.nan_to_num(np.asarray(sentiment_confidence, dtype=np.float64))
    total_w = w.sum(axis=0)
    enough = (present.sum(axis=1) >= params.min_subscores[p]) & (total_w > 0)
    w *= np.where(enough, 1.0 / np.where(enough, total_w, 1.0), 0.0)
    return w.T


def total_score(subs: Floats, weights: Floats) -> Floats:
    """Total 0-100 per row: Σ W'_s·S_s (:func:`subscore_weights`); NaN where no weight."""
    total = np.zeros(subs.shape[0])
    for s in range(subs.shape[1]):
        total += np.where(weights[:, s] > 0, subs[:, s] * weights[:, s], 0.0)
    return np.where(weights.sum(axis=1) > 0, total, np.nan)


def effective_weights(
    metrics: Floats,
    persona: npt.ArrayLike,
    params: PersonaArrays,
    sentiment_confidence: npt.ArrayLike,
) -> Floats:
    """(R, M) weight E_m of each metric in the total, after every re-normalisation.

    E_m = W'_s(m) · v_m / Σ_{present n in s(m)} v_n, so total = Σ E_m·X_m and the E of a
    scored row sum to 1. Rows without a total and absent metrics are 0.
    """
    p = _persona_ids(persona)
    num, den = _weighted_sums(metrics, p, params)
    v = np.where(np.isnan(metrics), 0.0, params.metric_weight[p])
    with np.errstate(invalid="ignore", divide="ignore"):
        subs = np.where(den > 0, num / den, np.nan)
        w = subscore_weights(subs, p, params, sentiment_confidence)
        share = np.where(den > 0, w / den, 0.0)
    return np.asarray(share[:, METRIC_SUBSCORE] * v, dtype=np.float64)


@dataclass(frozen=True)
class DeviceDayScores:
    """Everything scored for ``n_devices`` · ``n_days`` device-days (rows device-major)."""

    metrics: MetricScores
    subscores: Floats
    """(G, 4) in :data:`scoring.personas.SUBSCORES` order."""
    total: Floats
    """(G,) 0-100, NaN = not enough data."""
    n_days: int

    def grid(self, values: Floats) -> Floats:
        """Reshape a per-device-day array to (devices, days)."""
        return values.reshape(-1, self.n_days, *values.shape[1:])


def score_device_days(
    inputs: DeviceDayInputs,
    params: PersonaArrays,
    half_life_days: float = 7.0,
    max_age_days: int = 28,
) -> DeviceDayScores:
    """Metric scores, sub-scores and totals of every device-day of ``inputs``."""
    ms = metric_scores(inputs, params, half_life_days, max_age_days)
    persona = inputs.persona_of_group()
    subs = subscores(ms.scores, persona, params)
    weights = subscore_weights(subs, persona, params, ms.sentiment_confidence)
    return DeviceDayScores(
        metrics=ms, subscores=subs, total=total_score(subs, weights), n_days=inputs.n_days
    )


def rolling_mean(values: npt.ArrayLike, window: int, min_count: int = 1) -> Floats:
    """NaN-aware trailing mean over ``window`` days of a (devices, days) array.

    out[i, d] = mean of the non-NaN values[i, d-window+1 … d] (fewer at the start), NaN when
    fewer than ``min_count`` are present. Cumulative sums of values and counts, no loops.
    """
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError("window must be ≥ 1")
    present = ~np.isnan(v)
    zeros = np.zeros((v.shape[0], 1))
    csum = np.concatenate([zeros, np.cumsum(np.where(present, v, 0.0), axis=1)], axis=1)
    ccount = np.concatenate([zeros, np.cumsum(present, axis=1, dtype=np.float64)], axis=1)
    end = np.arange(1, v.shape[1] + 1)
    start = np.maximum(end - window, 0)
    total = csum[:, end] - csum[:, start]
    count = ccount[:, end] - ccount[:, start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= min_count, total / count, np.nan)
