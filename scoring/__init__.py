"""DexScope scoring: pure, vectorised numpy — arrays in, arrays out, no I/O.

Telemetry as flat sample arrays with a device-day index (:class:`DeviceDayInputs`) is scored
per metric against the device's persona (Apdex-shaped durations, rates per active hour,
pressure shares, recency- and response-weighted sentiment), combined into four sub-scores and
a 0-100 device-day score with re-normalised weights (:func:`score_device_days`), rolled over
7 and 28 days (:func:`rolling_mean`), turned into minutes lost (:func:`time_lost`),
aggregated per label (:func:`aggregate`) and explained (:func:`points_lost`,
:func:`top_contributors`, :func:`app_contributors`). Every formula: docs/scoring.md.
"""

from scoring.aggregate import aggregate
from scoring.apdex import FRUSTRATED, SATISFIED, TOLERATING, apdex, classify
from scoring.explain import app_contributors, points_lost, top_contributors
from scoring.metrics import DeviceDayInputs, metric_scores, survey_to_100
from scoring.personas import DEFAULT_PERSONAS, METRICS, SUBSCORES, Persona, persona_arrays
from scoring.score import rolling_mean, score_device_days
from scoring.time_lost import time_lost

__all__ = [
    "DEFAULT_PERSONAS",
    "FRUSTRATED",
    "METRICS",
    "SATISFIED",
    "SUBSCORES",
    "TOLERATING",
    "DeviceDayInputs",
    "Persona",
    "aggregate",
    "apdex",
    "app_contributors",
    "classify",
    "metric_scores",
    "persona_arrays",
    "points_lost",
    "rolling_mean",
    "score_device_days",
    "survey_to_100",
    "time_lost",
    "top_contributors",
]
