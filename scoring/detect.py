"""Streaming degradation detection: robust baselines, CUSUM change points, cohort tests.

Pure numpy, arrays in and arrays out, no I/O (docs/detection.md gives every formula).

* :func:`detect_series` — the general API for any metric series: timestamps and values in,
  per-point robust z-scores, CUSUM statistics and flags out, with a :class:`SeriesState`
  carried between calls so it runs incrementally (the same points in one call or in many give
  the same output). The baseline is the median and MAD of the series' recent points —
  per hour-of-week bucket once a bucket has enough history (seasonality), else overall.
* :func:`cusum` — one-sided CUSUM of z-scores, vectorised over many series.
* :func:`rate_ratio_test` and :func:`mean_difference_test` — cohort comparisons (devices with
  app version X against the rest, one site against the others) with a z statistic and an
  effect size; :func:`overlap` — how well a software change's adopters match an affected set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAD_TO_SIGMA",
    "DetectParams",
    "SeriesResult",
    "SeriesState",
    "cusum",
    "detect_series",
    "mean_difference_test",
    "overlap",
    "rate_ratio_test",
    "robust_z",
]

Floats = npt.NDArray[np.float64]

MAD_TO_SIGMA: Final = 1.4826
"""MAD x this estimates sigma for normal data (the consistency constant)."""

_HOUR_OF_WEEK: Final = 168


@dataclass(frozen=True)
class DetectParams:
    """Parameters of :func:`detect_series` (defaults in docs/detection.md).

    ``direction`` +1 flags increases (durations, rates: worse is higher), -1 decreases
    (scores: worse is lower). ``k`` is the CUSUM slack and ``h`` its decision threshold, both
    in sigma units; ``window`` the number of recent points kept per baseline; ``min_history``
    the points a baseline needs before anything is flagged (no verdict without a baseline);
    ``min_bucket`` the points an hour-of-week bucket needs to be used instead of the overall
    baseline; ``sigma_floor`` a lower bound of sigma in the series' units (a perfectly flat
    history must not turn a tiny change into a huge z).
    """

    direction: int = 1
    k: float = 0.5
    h: float = 5.0
    window: int = 28
    min_history: int = 7
    min_bucket: int = 4
    sigma_floor: float = 1e-9
    seasonal: bool = False

    def __post_init__(self) -> None:
        """Reject parameters that cannot work."""
        if self.direction not in (-1, 1):
            raise ValueError("direction must be +1 or -1")
        if self.k < 0 or self.h <= 0 or self.window < 2 or self.min_history < 2:
            raise ValueError("need k >= 0, h > 0, window >= 2, min_history >= 2")
        if self.min_history > self.window or self.sigma_floor <= 0:
            raise ValueError("need min_history <= window and sigma_floor > 0")


@dataclass
class SeriesState:
    """What :func:`detect_series` carries between calls for one series."""

    history: list[float] = field(default_factory=list)
    """The most recent ``window`` values (NaNs are not kept)."""
    buckets: dict[int, list[float]] = field(default_factory=dict)
    """The same per hour-of-week bucket (seasonal baselines)."""
    cusum: float = 0.0
    run_start: float | None = None
    """Timestamp where the current CUSUM excursion began (the onset estimate)."""
    last_ts: float | None = None


@dataclass(frozen=True)
class SeriesResult:
    """Per-point output of :func:`detect_series` (arrays as long as the input)."""

    z: Floats
    """Robust z-score against the baseline before the point (NaN: no baseline yet)."""
    cusum: Floats
    """CUSUM statistic after the point."""
    flag: npt.NDArray[np.bool_]
    """True where the CUSUM is above ``h``: the series has shifted."""
    onset: Floats
    """Where flagged: the timestamp where the excursion began; NaN elsewhere."""
    baseline: Floats
    """The baseline median used for the point."""


def robust_z(values: npt.ArrayLike, history: npt.ArrayLike, sigma_floor: float = 1e-9) -> Floats:
    """z of ``values`` against the median and MAD of each row of ``history`` (NaN-aware).

    ``history`` is (n, w) with NaN padding; ``values`` (n,). sigma = 1.4826 · MAD, at least
    ``sigma_floor``. Rows with no history give NaN.
    """
    h = np.asarray(history, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    present = (~np.isnan(h)).any(axis=1)
    if present.any():
        hp = h[present]
        med = np.nanmedian(hp, axis=1)
        mad = np.nanmedian(np.abs(hp - med[:, None]), axis=1)
        sigma = np.maximum(MAD_TO_SIGMA * mad, sigma_floor)
        out[present] = (v[present] - med) / sigma
    return out


def cusum(
    z: npt.ArrayLike, k: float = 0.5, h: float = 5.0, start: npt.ArrayLike | None = None
) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """One-sided CUSUM along the last axis of ``z``: S_t = max(0, S_{t-1} + z_t - k).

    ``z`` is (time,) for one series or (series, time) for many; a NaN z leaves S unchanged.
    Returns (S after each point, S > h), shaped like ``z``. ``start`` is the S each series
    starts from (its carried state; default 0).
    """
    zz = np.asarray(z, dtype=np.float64)
    grid = np.atleast_2d(zz)
    s = np.zeros(grid.shape[0]) if start is None else np.array(start, dtype=np.float64, ndmin=1)
    out = np.empty_like(grid)
    for t in range(grid.shape[1]):
        step = grid[:, t]
        s = np.where(np.isnan(step), s, np.maximum(0.0, s + step - k))
        out[:, t] = s
    out = out.reshape(zz.shape)
    return out, out > h


def detect_series(
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    state: SeriesState | None = None,
    params: DetectParams | None = None,
) -> tuple[SeriesResult, SeriesState]:
    """Score each new point of one series against its robust baseline; CUSUM for shifts.

    ``timestamps`` (POSIX seconds, increasing) and ``values`` of the new points only; the
    returned state goes into the next call. Each point is compared with the baseline of the
    points *before* it (median and MAD of the last ``window``; with ``seasonal``, the median
    of its hour-of-week bucket once that has ``min_bucket`` points, the scale still the
    overall MAD), so a point never hides itself.
    While the CUSUM is above ``h`` the point is flagged and carries the onset: the timestamp
    where the excursion started (the last time the CUSUM was 0). Every point joins the
    baseline after it is scored: the median ignores a short excursion, and a lasting shift
    becomes the new normal once it fills half the window (freezing the baseline instead
    locks the CUSUM up whenever the frozen baseline is slightly off).
    """
    p = params or DetectParams()
    st = state if state is not None else SeriesState()
    ts = np.asarray(timestamps, dtype=np.float64)
    vs = np.asarray(values, dtype=np.float64)
    if ts.shape != vs.shape or ts.ndim != 1:
        raise ValueError("timestamps and values must be 1-D and of the same length")
    if len(ts) > 1 and np.any(np.diff(ts) <= 0):
        raise ValueError("timestamps must be strictly increasing")
    if st.last_ts is not None and len(ts) and ts[0] <= st.last_ts:
        raise ValueError("new points must come after the state's last timestamp")
    n = len(ts)
    z = np.full(n, np.nan)
    s_out = np.zeros(n)
    flag = np.zeros(n, dtype=bool)
    onset = np.full(n, np.nan)
    base = np.full(n, np.nan)
    for i in range(n):
        x, t = float(vs[i]), float(ts[i])
        bucket = int(t // 3600) % _HOUR_OF_WEEK
        if not np.isnan(x) and len(st.history) >= p.min_history:
            arr = np.asarray(st.history, dtype=np.float64)
            overall = float(np.median(arr))
            sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(arr - overall))), p.sigma_floor)
            med = overall
            if p.seasonal and len(st.buckets.get(bucket, ())) >= p.min_bucket:
                # the bucket gives the level; the scale stays the overall one (a MAD of a
                # handful of points is too unstable to divide by)
                med = float(np.median(st.buckets[bucket]))
            z[i] = p.direction * (x - med) / sigma
            base[i] = med
            before = st.cusum
            st.cusum = max(0.0, st.cusum + z[i] - p.k)
            if before == 0.0 and st.cusum > 0.0:
                st.run_start = t
            elif st.cusum == 0.0:
                st.run_start = None
        s_out[i] = st.cusum
        flag[i] = st.cusum > p.h
        if flag[i] and st.run_start is not None:
            onset[i] = st.run_start
        if not np.isnan(x):
            st.history = [*st.history, x][-p.window :]
            if p.seasonal:
                st.buckets[bucket] = [*st.buckets.get(bucket, []), x][-p.window :]
        st.last_ts = t
    return SeriesResult(z=z, cusum=s_out, flag=flag, onset=onset, baseline=base), st


def rate_ratio_test(
    count_a: npt.ArrayLike,
    exposure_a: npt.ArrayLike,
    count_b: npt.ArrayLike,
    exposure_b: npt.ArrayLike,
    prior: float = 0.5,
) -> tuple[Floats, Floats]:
    """Rate ratio of cohort A over B, and the z of A's excess (conditional binomial test).

    Under "same rate", given n = c_a + c_b events, c_a ~ Binomial(n, p) with
    p = e_a / (e_a + e_b); z = (c_a - 0.5 - n p) / sqrt(n p (1 - p)) (normal approximation
    with a continuity correction: conservative for small n). The ratio is
    ((c_a + prior) / e_a) / ((c_b + prior) / e_b), finite with zero counts. NaN where an
    exposure is not positive or there is no event at all. Vectorised: one test per element.
    """
    ca, ea, cb, eb = (
        np.asarray(a, dtype=np.float64) for a in (count_a, exposure_a, count_b, exposure_b)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ((ca + prior) / ea) / ((cb + prior) / eb)
        n = ca + cb
        p = ea / (ea + eb)
        z = (ca - 0.5 - n * p) / np.sqrt(n * p * (1.0 - p))
    bad = (ea <= 0) | (eb <= 0)
    return np.where(bad, np.nan, ratio), np.where(bad | (n == 0), np.nan, z)


def mean_difference_test(
    mean_a: npt.ArrayLike,
    var_a: npt.ArrayLike,
    n_a: npt.ArrayLike,
    mean_b: npt.ArrayLike,
    var_b: npt.ArrayLike,
    n_b: npt.ArrayLike,
) -> tuple[Floats, Floats]:
    """Difference of means A - B and its Welch z (normal approximation). NaN below n = 2."""
    ma, va, na, mb, vb, nb = (
        np.asarray(a, dtype=np.float64) for a in (mean_a, var_a, n_a, mean_b, var_b, n_b)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = ma - mb
        z = diff / np.sqrt(va / na + vb / nb)
    bad = (na < 2) | (nb < 2)
    return np.where(bad, np.nan, diff), np.where(bad, np.nan, z)


def overlap(affected: npt.ArrayLike, adopters: npt.ArrayLike) -> tuple[float, float, float]:
    """(coverage, precision, Jaccard) of a change's adopters against an affected set.

    coverage = |affected and adopters| / |affected| (how much of the problem the change
    explains), precision = |both| / |adopters| (how many adopters suffer), and
    Jaccard = |both| / |either|.
    """
    a = set(np.asarray(affected).tolist())
    b = set(np.asarray(adopters).tolist())
    if not a or not b:
        return 0.0, 0.0, 0.0
    both = len(a & b)
    return both / len(a), both / len(b), both / len(a | b)
