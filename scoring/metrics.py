"""Per-metric scores of device-days (0-100, NaN = not enough data) from flat sample arrays.

Every sample array comes with a ``group`` array: the device-day id ``device * n_days + day``
(:func:`group_index`). Scores are sums per group with ``np.bincount`` — no loop over devices
or samples. Missing data is NaN, never "good": a device-day with no boot has no boot score.

* durations (boot, sign-in, hang length, probe latency) are Apdex-classified against the
  persona's T and F (:func:`duration_scores`);
* rates (app hangs, app crashes, system crashes, probe failures per active hour) and
  pressure shares (CPU / memory / I/O stall time over active time) score linearly from 100
  at the good level to 0 at the frustrating level (:func:`linear_score`);
* sentiment is the recency-weighted mean answer mapped to 0-100, carried forward at most
  ``max_age_days``, with a confidence = the device's response rate (:func:`sentiment_scores`).

See docs/scoring.md for every formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from dexscope.wire import SURVEY_OUTCOMES, SURVEY_SCALES
from scoring.personas import METRICS, PersonaArrays

__all__ = [
    "QUESTION_TYPES",
    "DeviceDayInputs",
    "MetricScores",
    "duration_scores",
    "group_index",
    "linear_score",
    "metric_scores",
    "pressure_scores",
    "rate_scores",
    "sentiment_scores",
    "survey_to_100",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]

QUESTION_TYPES: Final[tuple[str, ...]] = tuple(SURVEY_SCALES)
"""Survey question types; ``question_type`` arrays hold indexes into this tuple."""
_COUNTED_OUTCOMES: Final = ("answered", "dismissed", "expired")
_PROMPTED: Final = np.array([o in _COUNTED_OUTCOMES for o in SURVEY_OUTCOMES])
_ANSWERED: Final = SURVEY_OUTCOMES.index("answered")


def group_index(device: npt.ArrayLike, day: npt.ArrayLike, n_days: int) -> Ints:
    """Device-day id of each sample: ``device * n_days + day`` (rows of a (devices, days) grid)."""
    return np.asarray(device, dtype=np.intp) * n_days + np.asarray(day, dtype=np.intp)


def duration_scores(
    values: npt.ArrayLike,
    group: npt.ArrayLike,
    n_groups: int,
    threshold: npt.ArrayLike,
    frustrating: npt.ArrayLike,
    min_samples: npt.ArrayLike = 1,
) -> tuple[Floats, Floats]:
    """Apdex score ·100 per group and the sample count: (good + tolerating/2) / n · 100.

    ``threshold`` / ``frustrating`` broadcast against ``values`` (per sample, from the
    sample's persona); ``min_samples`` broadcasts against the groups. NaN samples are not
    counted; groups with fewer than ``min_samples`` samples score NaN.
    """
    g = np.asarray(group, dtype=np.intp)
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(threshold, dtype=np.float64)
    f = np.asarray(frustrating, dtype=np.float64)
    if (t.size and t.min() <= 0) or np.any(f < t):
        raise ValueError("thresholds must be positive and frustrating ≥ threshold")
    # twice the credit of scoring.apdex.classify's classes without materialising them:
    # satisfied 2 (≤ T), tolerating 1 (≤ F), frustrated 0; NaN compares False → 0
    credit2 = np.add(v <= t, v <= f, dtype=np.float64)
    n = np.bincount(g, minlength=n_groups) - np.bincount(g[np.isnan(v)], minlength=n_groups)
    good2 = np.bincount(g, weights=credit2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 50.0 * good2 / n
    score[n < np.asarray(min_samples)] = np.nan
    return score, n.astype(np.float64)


def linear_score(x: npt.ArrayLike, good: npt.ArrayLike, frustrating: npt.ArrayLike) -> Floats:
    """100 at or below ``good``, 0 at or above ``frustrating``, linear between; NaN stays NaN."""
    xv, g, f = (np.asarray(a, dtype=np.float64) for a in (x, good, frustrating))
    return np.asarray(100.0 * np.clip((f - xv) / (f - g), 0.0, 1.0), dtype=np.float64)


def rate_scores(
    group: npt.ArrayLike,
    n_groups: int,
    active_s: npt.ArrayLike,
    good: npt.ArrayLike,
    frustrating: npt.ArrayLike,
    min_active_s: npt.ArrayLike,
) -> tuple[Floats, Floats]:
    """Score of events per active hour per group, and the rate itself.

    ``group`` has one entry per event; ``active_s`` and the levels are per group. Groups
    with less than ``min_active_s`` active seconds score NaN (no exposure, no verdict).
    """
    counts = np.bincount(np.asarray(group, dtype=np.intp), minlength=n_groups)
    active = np.asarray(active_s, dtype=np.float64)
    enough = active >= np.asarray(min_active_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(enough, counts / (active / 3600.0), np.nan)
    return linear_score(rate, good, frustrating), rate


def pressure_scores(
    pressure_s: npt.ArrayLike,
    interval_s: npt.ArrayLike,
    group: npt.ArrayLike,
    n_groups: int,
    good: npt.ArrayLike,
    frustrating: npt.ArrayLike,
    min_active_s: npt.ArrayLike,
) -> tuple[Floats, Floats]:
    """Score of the share of active time stalled on a resource per group, and the share.

    share = Σ pressure_s / Σ interval_s over the samples that report this pressure (NaN
    ``pressure_s`` = not measured: the interval counts neither way).
    """
    p = np.asarray(pressure_s, dtype=np.float64)
    g = np.asarray(group, dtype=np.intp)
    interval = np.asarray(interval_s, dtype=np.float64)
    missing = np.isnan(p)
    if missing.any():  # subset only when some interval has no measurement
        g, p, interval = g[~missing], p[~missing], interval[~missing]
    stalled = np.bincount(g, weights=p, minlength=n_groups)
    covered = np.bincount(g, weights=interval, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(covered >= np.asarray(min_active_s), stalled / covered, np.nan)
    return linear_score(share, good, frustrating), share


def survey_to_100(value: npt.ArrayLike, question_type: npt.ArrayLike) -> Floats:
    """Answers on their question's scale mapped linearly to 0-100 (lowest → 0, highest → 100).

    ``question_type`` indexes :data:`QUESTION_TYPES`. NaN answers stay NaN. Every scale has
    its best answer highest (CES is shown from "Very difficult" 1 to "Very easy" 7).
    """
    scales = np.array([SURVEY_SCALES[q] for q in QUESTION_TYPES], dtype=np.float64)
    q = np.asarray(question_type, dtype=np.intp)
    lo, hi = scales[q, 0], scales[q, 1]
    return np.asarray(100.0 * (np.asarray(value, dtype=np.float64) - lo) / (hi - lo))


def sentiment_scores(
    device: npt.ArrayLike,
    t_days: npt.ArrayLike,
    value_100: npt.ArrayLike,
    outcome: npt.ArrayLike,
    n_devices: int,
    n_days: int,
    half_life_days: float = 7.0,
    max_age_days: int = 28,
    min_answers: npt.ArrayLike = 1,
) -> tuple[Floats, Floats, Floats]:
    """Sentiment per device-day: (score 0-100, confidence 0-1, answers in the window).

    A prompt at time ``t_days`` (days since the start of day 0, fractional; negative for
    answers before the period, which carry into its first days) counts for the
    days ``floor(t) … floor(t) + max_age_days - 1``; on day d its weight is
    ``0.5 ** ((d + 1 - t) / half_life_days)`` (age at the end of day d). score = Σ w·v / Σ w
    over answered prompts. confidence = answered / prompted over the same window (prompts
    answered, dismissed or expired; snoozed and opted-out ones are not counted), the factor
    that scales the sentiment sub-score's weight. ``outcome`` indexes ``SURVEY_OUTCOMES``.
    """
    t = np.asarray(t_days, dtype=np.float64)
    v = np.asarray(value_100, dtype=np.float64)
    oc = np.asarray(outcome, dtype=np.intp)
    answered = (oc == _ANSWERED) & ~np.isnan(v)
    prompted = _PROMPTED[oc] | answered
    n_groups = n_devices * n_days
    keep = prompted & (t >= -max_age_days) & (t < n_days)  # earlier answers carry in
    t, v, answered = t[keep], v[keep], answered[keep]
    dev = np.asarray(device, dtype=np.intp)[keep]
    day = np.floor(t).astype(np.intp)[:, None] + np.arange(max_age_days, dtype=np.intp)
    inside = (day >= 0) & (day < n_days)
    g = (dev[:, None] * n_days + day)[inside]
    w = (0.5 ** ((day + 1 - t[:, None]) / half_life_days))[inside]
    ans = np.broadcast_to(answered[:, None], day.shape)[inside]
    vals = np.broadcast_to(np.where(answered, v, 0.0)[:, None], day.shape)[inside]
    prompts = np.bincount(g, minlength=n_groups).astype(np.float64)
    n_answers = np.bincount(g, weights=ans.astype(np.float64), minlength=n_groups)
    wsum = np.bincount(g, weights=np.where(ans, w, 0.0), minlength=n_groups)
    num = np.bincount(g, weights=np.where(ans, w * vals, 0.0), minlength=n_groups)
    enough = n_answers >= np.asarray(min_answers)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(enough, num / wsum, np.nan)
        confidence = np.where(enough, n_answers / prompts, np.nan)
    return score, confidence, np.asarray(n_answers, dtype=np.float64)


def _empty_f() -> Floats:
    return np.empty(0, dtype=np.float64)


def _empty_i() -> Ints:
    return np.empty(0, dtype=np.intp)


def _empty_b() -> npt.NDArray[np.bool_]:
    return np.empty(0, dtype=np.bool_)


@dataclass(frozen=True)
class DeviceDayInputs:
    """The telemetry of ``n_devices`` · ``n_days`` device-days as flat sample arrays.

    ``*_group`` arrays hold the device-day id (:func:`group_index`) of each sample; ``*_app``
    arrays an application id (any dense integer labelling). Resource samples may be raw
    ``resource_sample`` events or the collector's rollups (one row per device-hour or
    device-day with summed seconds) — the sums are the same. Their ``interval_s`` sum is the
    device-day's *active time*, the exposure of every rate. NaN marks an absent optional
    field (hang length, pressure, probe latency, survey value).
    """

    n_devices: int
    n_days: int
    persona: Ints
    """(n_devices,) persona id of each device."""
    boot_s: Floats = field(default_factory=_empty_f)
    boot_group: Ints = field(default_factory=_empty_i)
    logon_s: Floats = field(default_factory=_empty_f)
    logon_group: Ints = field(default_factory=_empty_i)
    hang_s: Floats = field(default_factory=_empty_f)
    hang_group: Ints = field(default_factory=_empty_i)
    hang_app: Ints = field(default_factory=_empty_i)
    crash_group: Ints = field(default_factory=_empty_i)
    crash_app: Ints = field(default_factory=_empty_i)
    system_crash_group: Ints = field(default_factory=_empty_i)
    probe_s: Floats = field(default_factory=_empty_f)
    """``total_s`` of each probe (NaN when it failed or was not measured)."""
    probe_ok: npt.NDArray[np.bool_] = field(default_factory=_empty_b)
    probe_group: Ints = field(default_factory=_empty_i)
    resource_group: Ints = field(default_factory=_empty_i)
    interval_s: Floats = field(default_factory=_empty_f)
    cpu_pressure_s: Floats = field(default_factory=_empty_f)
    memory_pressure_s: Floats = field(default_factory=_empty_f)
    io_pressure_s: Floats = field(default_factory=_empty_f)
    survey_device: Ints = field(default_factory=_empty_i)
    survey_t_days: Floats = field(default_factory=_empty_f)
    """Time of each survey response in days since the start of day 0."""
    survey_value_100: Floats = field(default_factory=_empty_f)
    """Answer mapped to 0-100 (:func:`survey_to_100`); NaN when not answered."""
    survey_outcome: Ints = field(default_factory=_empty_i)
    """Index into ``dexscope.wire.SURVEY_OUTCOMES``."""

    def __post_init__(self) -> None:
        """Reject parallel arrays of different lengths (pressure arrays may be empty: none)."""
        parallel = (
            ("boot_s", "boot_group"),
            ("logon_s", "logon_group"),
            ("hang_s", "hang_group", "hang_app"),
            ("crash_group", "crash_app"),
            ("probe_s", "probe_ok", "probe_group"),
            ("resource_group", "interval_s"),
            ("survey_device", "survey_t_days", "survey_value_100", "survey_outcome"),
        )
        for names in parallel:
            if len({len(getattr(self, name)) for name in names}) > 1:
                raise ValueError(f"{', '.join(names)} must have the same length")
        for name in ("cpu_pressure_s", "memory_pressure_s", "io_pressure_s"):
            if len(getattr(self, name)) not in (0, len(self.interval_s)):
                raise ValueError(f"{name} must be empty or as long as interval_s")
        if len(self.persona) != self.n_devices:
            raise ValueError("persona needs one id per device")

    @property
    def n_groups(self) -> int:
        """Number of device-days (``n_devices * n_days``)."""
        return self.n_devices * self.n_days

    def persona_of_group(self) -> npt.NDArray[np.int8]:
        """Persona id of every device-day (device-major, like :func:`group_index`).

        int8 (at most 127 personas): gathering a byte per sample is several times faster
        than a 64-bit index on a memory-bound machine.
        """
        return np.repeat(np.asarray(self.persona).astype(np.int8), self.n_days)


@dataclass(frozen=True)
class MetricScores:
    """Per-device-day metric scores: ``scores[g, m]`` 0-100 or NaN (not enough data)."""

    scores: Floats
    """(G, M) in :data:`scoring.personas.METRICS` order."""
    sentiment_confidence: Floats
    """(G,) response rate in the sentiment window (NaN without answers)."""
    active_s: Floats
    """(G,) active seconds (Σ interval_s of resource samples)."""


def metric_scores(
    inputs: DeviceDayInputs,
    params: PersonaArrays,
    half_life_days: float = 7.0,
    max_age_days: int = 28,
) -> MetricScores:
    """Score every metric of every device-day against its device's persona."""
    n = inputs.n_groups
    pg = inputs.persona_of_group()
    out = np.full((n, len(METRICS)), np.nan, order="F")  # column passes stay contiguous
    col = {m: j for j, m in enumerate(METRICS)}
    min_samples = params.min_samples[pg]

    def duration(metric: str, values: Floats, group: Ints) -> None:
        j = col[metric]
        p = pg[group]
        t, f = params.threshold[:, j][p], params.frustrating[:, j][p]
        out[:, j] = duration_scores(values, group, n, t, f, min_samples)[0]

    duration("boot", inputs.boot_s, inputs.boot_group)
    duration("logon", inputs.logon_s, inputs.logon_group)
    duration("hang_duration", inputs.hang_s, inputs.hang_group)
    ok = np.asarray(inputs.probe_ok, dtype=np.bool_)
    duration("probe_latency", np.where(ok, inputs.probe_s, np.nan), inputs.probe_group)

    active = np.bincount(inputs.resource_group, weights=inputs.interval_s, minlength=n).astype(
        np.float64
    )
    min_active = params.min_active_s[pg]
    for metric, group in (
        ("app_hang_rate", inputs.hang_group),
        ("app_crash_rate", inputs.crash_group),
        ("system_crash_rate", inputs.system_crash_group),
        ("probe_failure_rate", np.asarray(inputs.probe_group)[~ok]),
    ):
        j = col[metric]
        out[:, j] = rate_scores(
            group,
            n,
            active,
            params.threshold[:, j][pg],
            params.frustrating[:, j][pg],
            min_active,
        )[0]
    # no probe ran: a failure rate of 0 would be "good" from no data
    probes = np.bincount(np.asarray(inputs.probe_group, dtype=np.intp), minlength=n)
    out[probes == 0, col["probe_failure_rate"]] = np.nan
    for metric, stalled in (
        ("cpu_pressure", inputs.cpu_pressure_s),
        ("memory_pressure", inputs.memory_pressure_s),
        ("io_pressure", inputs.io_pressure_s),
    ):
        if len(stalled) == 0:
            continue  # not measured at all: the metric stays NaN
        j = col[metric]
        out[:, j] = pressure_scores(
            stalled,
            inputs.interval_s,
            inputs.resource_group,
            n,
            params.threshold[:, j][pg],
            params.frustrating[:, j][pg],
            min_active,
        )[0]
    sentiment, confidence, _ = sentiment_scores(
        inputs.survey_device,
        inputs.survey_t_days,
        inputs.survey_value_100,
        inputs.survey_outcome,
        inputs.n_devices,
        inputs.n_days,
        half_life_days,
        max_age_days,
        params.min_answers[pg],
    )
    out[:, col["sentiment"]] = sentiment
    return MetricScores(scores=out, sentiment_confidence=confidence, active_s=active)
