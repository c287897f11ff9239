"""Personas: what a good experience means for one kind of employee, as parameter arrays.

A :class:`Persona` holds the per-metric thresholds (Apdex T for durations, the good level
for rates and pressure shares), the frustrating levels, the metric weights inside each
sub-score, the weights of the four sub-scores, the minimum data below which a score is
"not enough data", and the time-lost costs. :func:`persona_arrays` turns a list of personas
into arrays indexed ``[persona id, metric]`` so that scoring stays vectorised: every sample
looks up its thresholds with one fancy-indexing operation. See docs/scoring.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_METRIC_WEIGHTS",
    "DEFAULT_PERSONAS",
    "DURATION",
    "KNOWLEDGE_WORKER_THRESHOLDS",
    "METRICS",
    "METRIC_KIND",
    "METRIC_SUBSCORE",
    "PRESSURE",
    "RATE",
    "SENTIMENT",
    "SUBSCORES",
    "Persona",
    "PersonaArrays",
    "persona_arrays",
]

DURATION: Final = 0
"""Metric kind: seconds per sample, scored Apdex-style against T and F."""
RATE: Final = 1
"""Metric kind: events per active hour, scored linearly between good and frustrating."""
PRESSURE: Final = 2
"""Metric kind: share (0-1) of active time stalled on a resource, scored linearly."""
SENTIMENT: Final = 3
"""Metric kind: survey answers mapped to 0-100 (no threshold)."""

METRICS: Final[tuple[str, ...]] = (
    "boot",
    "logon",
    "hang_duration",
    "probe_latency",
    "app_hang_rate",
    "app_crash_rate",
    "system_crash_rate",
    "probe_failure_rate",
    "cpu_pressure",
    "memory_pressure",
    "io_pressure",
    "sentiment",
)
"""Every metric, in the column order of all ``(…, n_metrics)`` arrays."""

SUBSCORES: Final[tuple[str, ...]] = ("startup", "responsiveness", "stability", "sentiment")
"""The four sub-scores, in the column order of all ``(…, 4)`` arrays."""

METRIC_KIND: Final[npt.NDArray[np.int8]] = np.array(
    [DURATION] * 4 + [RATE] * 4 + [PRESSURE] * 3 + [SENTIMENT], dtype=np.int8
)
"""Kind of each metric (index as :data:`METRICS`)."""

METRIC_SUBSCORE: Final[npt.NDArray[np.intp]] = np.array(
    [0, 0, 1, 1, 1, 2, 2, 2, 1, 1, 1, 3], dtype=np.intp
)
"""Sub-score (index into :data:`SUBSCORES`) each metric feeds."""

DEFAULT_METRIC_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "boot": 1.0,
        "logon": 1.0,
        "hang_duration": 1.0,
        "probe_latency": 1.0,
        "app_hang_rate": 2.0,
        "app_crash_rate": 2.0,
        "system_crash_rate": 3.0,
        "probe_failure_rate": 1.0,
        "cpu_pressure": 1.0,
        "memory_pressure": 1.0,
        "io_pressure": 1.0,
        "sentiment": 1.0,
    }
)
"""Weight of each metric inside its sub-score (re-normalised over the metrics present)."""

KNOWLEDGE_WORKER_THRESHOLDS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "boot": 60.0,  # s
        "logon": 30.0,  # s
        "hang_duration": 10.0,  # s
        "probe_latency": 1.0,  # s
        "app_hang_rate": 0.0,  # per active hour
        "app_crash_rate": 0.0,
        "system_crash_rate": 0.0,
        "probe_failure_rate": 0.0,
        "cpu_pressure": 0.05,  # share of active time
        "memory_pressure": 0.02,
        "io_pressure": 0.05,
    }
)
"""The knowledge worker's good levels, the base the other default personas adjust."""

_KW_FRUSTRATING: Final[Mapping[str, float]] = MappingProxyType(
    {
        "app_hang_rate": 0.5,  # 4 hangs in an 8-hour day
        "app_crash_rate": 0.25,  # 2 crashes in an 8-hour day
        "system_crash_rate": 0.125,  # 1 system crash in an 8-hour day
        "probe_failure_rate": 2.0,
        "cpu_pressure": 0.25,
        "memory_pressure": 0.10,
        "io_pressure": 0.25,
    }
)


@dataclass(frozen=True)
class Persona:
    """Expectations of one kind of employee: thresholds, weights, minimum data and costs.

    ``thresholds`` gives every non-sentiment metric its good level (Apdex T in seconds for
    durations, events per active hour for rates, a 0-1 share for pressure). ``frustrating``
    gives the level at which the metric scores 0 (rates, pressure) or a sample is frustrated
    (durations); a missing entry defaults to 4 · the threshold, the Apdex convention, so
    metrics whose good level is 0 must name theirs. ``subscore_weights`` weight the four
    sub-scores; ``metric_weights`` weight the metrics inside each sub-score.
    """

    name: str
    description: str
    thresholds: Mapping[str, float]
    subscore_weights: Mapping[str, float]
    frustrating: Mapping[str, float] = field(default_factory=dict)
    metric_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_METRIC_WEIGHTS)
    min_samples: int = 1
    """Duration samples a metric needs on a device-day (fewer: NaN, not enough data)."""
    min_active_s: float = 1800.0
    """Active seconds a rate or pressure metric needs on a device-day."""
    min_answers: int = 1
    """Survey answers (in the carry-forward window) the sentiment metric needs."""
    min_subscores: int = 2
    """Sub-scores a device-day total needs (fewer: the total is NaN)."""
    app_crash_cost_min: float = 5.0
    """Minutes lost per application crash (restart the app, recover work)."""
    system_crash_cost_min: float = 15.0
    """Minutes lost per system crash (reboot, sign in, reopen everything)."""
    hang_default_s: float = 5.0
    """Hang length assumed for time lost when the OS did not record it."""
    alert_min_score_drop: float = 25.0
    """Points a device's daily score must fall below its own baseline before a device alert
    opens (with a significant change point): how large a drop is news for this persona."""

    def __post_init__(self) -> None:
        """Reject unknown metrics, missing thresholds and inconsistent levels early."""
        scored = set(METRICS) - {"sentiment"}
        for label, mapping, allowed in (
            ("thresholds", self.thresholds, scored),
            ("frustrating", self.frustrating, scored),
            ("metric_weights", self.metric_weights, set(METRICS)),
            ("subscore_weights", self.subscore_weights, set(SUBSCORES)),
        ):
            unknown = set(mapping) - allowed
            if unknown:
                raise ValueError(f"{self.name}: unknown {label} {sorted(unknown)}")
        if set(self.thresholds) != scored:
            raise ValueError(
                f"{self.name}: thresholds missing {sorted(scored - set(self.thresholds))}"
            )
        for metric in scored:
            good, bad = self.thresholds[metric], self.frustrating_level(metric)
            positive = METRIC_KIND[METRICS.index(metric)] == DURATION
            if good < 0 or (positive and good <= 0) or bad <= good:
                raise ValueError(f"{self.name}: {metric} needs 0 ≤ good < frustrating")
        weights = [*self.subscore_weights.values(), *self.metric_weights.values()]
        if any(w < 0 for w in weights) or sum(self.subscore_weights.values()) <= 0:
            raise ValueError(f"{self.name}: weights must be non-negative, not all zero")
        if self.min_samples < 1 or self.min_answers < 1 or not 1 <= self.min_subscores <= 4:
            raise ValueError(f"{self.name}: minimum samples out of range")
        if not 0.0 < self.alert_min_score_drop <= 100.0:
            raise ValueError(f"{self.name}: alert_min_score_drop is in (0, 100] points")

    def frustrating_level(self, metric: str) -> float:
        """The frustrating level of ``metric``: the explicit one or 4 · its threshold."""
        return self.frustrating.get(metric, 4.0 * self.thresholds[metric])


def _persona(
    name: str,
    description: str,
    weights: tuple[float, float, float, float],
    thresholds: Mapping[str, float] | None = None,
    frustrating: Mapping[str, float] | None = None,
    **extra: float,
) -> Persona:
    return Persona(
        name=name,
        description=description,
        thresholds=MappingProxyType({**KNOWLEDGE_WORKER_THRESHOLDS, **(thresholds or {})}),
        frustrating=MappingProxyType({**_KW_FRUSTRATING, **(frustrating or {})}),
        subscore_weights=MappingProxyType(dict(zip(SUBSCORES, weights, strict=True))),
        **extra,  # type: ignore[arg-type]
    )


DEFAULT_PERSONAS: Final[tuple[Persona, ...]] = (
    _persona(
        "knowledge_worker",
        "Office applications, mail and meetings; the reference persona.",
        (0.25, 0.30, 0.30, 0.15),
    ),
    _persona(
        "developer",
        "Builds and tests code: tolerates longer boots and CPU/IO pressure from compiles, "
        "cares most about responsiveness and stability.",
        (0.15, 0.35, 0.35, 0.15),
        thresholds={
            "boot": 120.0,
            "logon": 45.0,
            "hang_duration": 15.0,
            "cpu_pressure": 0.15,
            "io_pressure": 0.10,
        },
        frustrating={"cpu_pressure": 0.50, "io_pressure": 0.40, "app_hang_rate": 1.0},
    ),
    _persona(
        "contact_centre_agent",
        "Handles calls against a service level: every second of sign-in and every hang "
        "is a customer waiting, so tighter startup, hang and web-app latency limits.",
        (0.30, 0.35, 0.25, 0.10),
        thresholds={"logon": 15.0, "hang_duration": 3.0, "probe_latency": 0.5},
        frustrating={"app_hang_rate": 0.25, "app_crash_rate": 0.125, "probe_failure_rate": 1.0},
    ),
    _persona(
        "field_worker",
        "Works on the road over mobile networks: slower boots and web apps are expected, "
        "more probe failures tolerated.",
        (0.30, 0.25, 0.30, 0.15),
        thresholds={"boot": 90.0, "logon": 45.0, "probe_latency": 2.0},
        frustrating={"probe_failure_rate": 4.0},
    ),
    _persona(
        "executive",
        "Few applications, little patience: tighter startup limits, sentiment weighs "
        "most, and a crash costs more of an expensive hour.",
        (0.25, 0.25, 0.20, 0.30),
        thresholds={"boot": 45.0, "logon": 20.0, "hang_duration": 5.0},
        frustrating={"app_crash_rate": 0.125},
        app_crash_cost_min=10.0,
        system_crash_cost_min=20.0,
    ),
)
"""The built-in personas (id = position; knowledge_worker is 0)."""


@dataclass(frozen=True)
class PersonaArrays:
    """Persona parameters as arrays indexed by persona id (rows) and metric (columns)."""

    names: tuple[str, ...]
    threshold: npt.NDArray[np.float64]
    """(P, M) good level; NaN for sentiment."""
    frustrating: npt.NDArray[np.float64]
    """(P, M) frustrating level; NaN for sentiment."""
    metric_weight: npt.NDArray[np.float64]
    """(P, M) weight of each metric inside its sub-score."""
    subscore_weight: npt.NDArray[np.float64]
    """(P, 4) weight of each sub-score in the total."""
    min_samples: npt.NDArray[np.int64]
    min_active_s: npt.NDArray[np.float64]
    min_answers: npt.NDArray[np.int64]
    min_subscores: npt.NDArray[np.int64]
    app_crash_cost_min: npt.NDArray[np.float64]
    system_crash_cost_min: npt.NDArray[np.float64]
    hang_default_s: npt.NDArray[np.float64]


def persona_arrays(personas: Sequence[Persona] = DEFAULT_PERSONAS) -> PersonaArrays:
    """Stack ``personas`` into :class:`PersonaArrays` (persona id = position in the list).

    A loop over the handful of personas and metrics; everything downstream indexes these
    arrays with per-sample persona ids instead of looping over devices.
    """
    if not 1 <= len(personas) <= 127:
        raise ValueError("need 1 to 127 personas (persona ids are int8)")
    n, m = len(personas), len(METRICS)
    threshold = np.full((n, m), np.nan)
    frustrating = np.full((n, m), np.nan)
    metric_weight = np.zeros((n, m))
    subscore_weight = np.zeros((n, len(SUBSCORES)))
    for i, p in enumerate(personas):
        for j, metric in enumerate(METRICS):
            metric_weight[i, j] = p.metric_weights.get(metric, 0.0)
            if metric != "sentiment":
                threshold[i, j] = p.thresholds[metric]
                frustrating[i, j] = p.frustrating_level(metric)
        for k, sub in enumerate(SUBSCORES):
            subscore_weight[i, k] = p.subscore_weights.get(sub, 0.0)

    def col(attr: str, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
        return np.array([getattr(p, attr) for p in personas], dtype=dtype)

    return PersonaArrays(
        names=tuple(p.name for p in personas),
        threshold=threshold,
        frustrating=frustrating,
        metric_weight=metric_weight,
        subscore_weight=subscore_weight,
        min_samples=col("min_samples", np.int64).astype(np.int64),
        min_active_s=col("min_active_s", np.float64).astype(np.float64),
        min_answers=col("min_answers", np.int64).astype(np.int64),
        min_subscores=col("min_subscores", np.int64).astype(np.int64),
        app_crash_cost_min=col("app_crash_cost_min", np.float64).astype(np.float64),
        system_crash_cost_min=col("system_crash_cost_min", np.float64).astype(np.float64),
        hang_default_s=col("hang_default_s", np.float64).astype(np.float64),
    )
