"""From stored events to scored device-days: the bridge between the database and scoring/.

:func:`build_inputs` turns raw event rows of a block of devices and days into the scoring
core's flat arrays (:class:`scoring.metrics.DeviceDayInputs`); :func:`score_block` runs the
core on them and returns plain row dicts for the repository to upsert. No I/O here: rows in,
rows out, so the same code serves the job, the explain endpoint and the tests.

Days are UTC calendar days. A first sign-in on a device (profile creation) is not scored:
it measures provisioning, not the employee's daily experience.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dexscope.wire import SURVEY_OUTCOMES
from scoring.apps import app_pair_scores
from scoring.explain import points_lost
from scoring.metrics import QUESTION_TYPES, DeviceDayInputs, survey_to_100
from scoring.personas import METRICS, SUBSCORES, Persona, persona_arrays
from scoring.score import score_device_days
from scoring.time_lost import COMPONENTS, time_lost

__all__ = [
    "SCORED_TYPES",
    "SCORING_VERSION",
    "SURVEY_WINDOW_DAYS",
    "Block",
    "EventRow",
    "ScoredBlock",
    "build_inputs",
    "day_start",
    "score_block",
]

SCORING_VERSION: Final = 1
"""Stamped on every stored score; bumped when a formula changes (docs/scoring.md)."""

SURVEY_WINDOW_DAYS: Final = 28
"""How far back survey answers carry (the sentiment ``max_age_days``)."""

SCORED_TYPES: Final[tuple[str, ...]] = (
    "boot",
    "logon",
    "app_hang",
    "app_crash",
    "system_crash",
    "probe",
    "resource_sample",
    "app_resource",
    "survey_response",
)
"""Event types the scores read (software changes and agent health do not score)."""

_OUTCOME_INDEX: Final = {name: i for i, name in enumerate(SURVEY_OUTCOMES)}
_QUESTION_INDEX: Final = {name: i for i, name in enumerate(QUESTION_TYPES)}

EventRow = tuple[int, str, datetime, dict[str, Any]]
"""(device index in the block, event type, ts, the event's fields)."""


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Block:
    """A block of devices x consecutive days to score, with each device's persona."""

    device_ids: Sequence[uuid.UUID]
    persona_names: Sequence[str]
    first_day: date
    n_days: int

    def day(self, index: int) -> date:
        """The calendar day of day index ``index``."""
        return self.first_day + timedelta(days=index)


@dataclass(frozen=True)
class ScoredBlock:
    """What :func:`score_block` returns: device-day rows and (device-day, app) rows."""

    device_days: list[dict[str, Any]]
    app_days: list[dict[str, Any]]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def build_inputs(
    block: Block, personas: Sequence[Persona], rows: Iterable[EventRow]
) -> tuple[
    DeviceDayInputs,
    list[str],
    npt.NDArray[np.intp],
    npt.NDArray[np.intp],
    dict[str, npt.NDArray[np.float64]],
]:
    """The block's events as scoring arrays, the app names, where each app was present, and
    the raw measures that are not scored (``disk_percent`` per resource sample).

    Returns ``(inputs, app_names, present_group, present_app, extras)``; app ids index
    ``app_names`` (sorted, so the same events always give the same ids). Events outside the
    block's days are ignored, except survey answers up to :data:`SURVEY_WINDOW_DAYS` before
    its first day, which carry into its first days.
    """
    n_days = block.n_days
    origin = day_start(block.first_day).timestamp()
    by_name = {p.name: i for i, p in enumerate(personas)}
    persona = np.array([by_name[name] for name in block.persona_names], dtype=np.intp)
    cols: dict[str, list[float]] = {}
    app_rows: list[tuple[str, int, str]] = []  # (kind, group, app name)

    def add(name: str, value: float) -> None:
        cols.setdefault(name, []).append(value)

    for device, kind, ts, data in rows:
        t = (ts.timestamp() - origin) / 86400.0
        if kind == "survey_response":
            if t >= n_days or t < -SURVEY_WINDOW_DAYS:
                continue
            outcome = _OUTCOME_INDEX.get(str(data.get("outcome")), -1)
            if outcome < 0:
                continue
            value, qtype = data.get("value"), data.get("question_type")
            scaled = math.nan
            if isinstance(value, int | float) and qtype in _QUESTION_INDEX:
                scaled = float(survey_to_100(value, _QUESTION_INDEX[qtype]))
            add("survey_device", device)
            add("survey_t_days", t)
            add("survey_value_100", scaled)
            add("survey_outcome", outcome)
            continue
        day = math.floor(t)
        if not 0 <= day < n_days:
            continue
        g = device * n_days + day
        if kind == "boot":
            if "boot_duration_s" in data:
                add("boot_s", _num(data["boot_duration_s"]))
                add("boot_group", g)
        elif kind == "logon":
            if not data.get("first_logon"):
                add("logon_s", _num(data.get("logon_duration_s")))
                add("logon_group", g)
        elif kind == "app_hang":
            add("hang_s", _num(data.get("hang_duration_s")))
            add("hang_group", g)
            app_rows.append(("hang", g, str(data.get("app_name"))))
        elif kind == "app_crash":
            add("crash_group", g)
            app_rows.append(("crash", g, str(data.get("app_name"))))
        elif kind == "system_crash":
            add("system_crash_group", g)
        elif kind == "probe":
            ok = bool(data.get("ok"))
            add("probe_s", _num(data.get("total_s")) if ok else math.nan)
            add("probe_ok", float(ok))
            add("probe_group", g)
        elif kind == "resource_sample":
            add("resource_group", g)
            add("interval_s", _num(data.get("interval_s")))
            add("disk_percent", _num(data.get("disk_percent")))
            for field in ("cpu_pressure_s", "memory_pressure_s", "io_pressure_s"):
                add(field, _num(data.get(field)))
        elif kind == "app_resource":
            app_rows.append(("present", g, str(data.get("app_name"))))

    app_names = sorted({name for _, _, name in app_rows})
    app_id = {name: i for i, name in enumerate(app_names)}

    def ints(name: str) -> npt.NDArray[np.intp]:
        return np.asarray(cols.get(name, ()), dtype=np.intp)

    def floats(name: str) -> npt.NDArray[np.float64]:
        return np.asarray(cols.get(name, ()), dtype=np.float64)

    def apps(kind: str) -> npt.NDArray[np.intp]:
        return np.asarray([app_id[n] for k, _, n in app_rows if k == kind], dtype=np.intp)

    def app_groups(kind: str) -> npt.NDArray[np.intp]:
        return np.asarray([g for k, g, _ in app_rows if k == kind], dtype=np.intp)

    pressure = {
        f: floats(f) if not np.isnan(floats(f)).all() else np.empty(0)
        for f in ("cpu_pressure_s", "memory_pressure_s", "io_pressure_s")
    }
    inputs = DeviceDayInputs(
        n_devices=len(block.device_ids),
        n_days=n_days,
        persona=persona,
        boot_s=floats("boot_s"),
        boot_group=ints("boot_group"),
        logon_s=floats("logon_s"),
        logon_group=ints("logon_group"),
        hang_s=floats("hang_s"),
        hang_group=ints("hang_group"),
        hang_app=apps("hang"),
        crash_group=ints("crash_group"),
        crash_app=apps("crash"),
        system_crash_group=ints("system_crash_group"),
        probe_s=floats("probe_s"),
        probe_ok=floats("probe_ok").astype(np.bool_),
        probe_group=ints("probe_group"),
        resource_group=ints("resource_group"),
        interval_s=floats("interval_s"),
        cpu_pressure_s=pressure["cpu_pressure_s"],
        memory_pressure_s=pressure["memory_pressure_s"],
        io_pressure_s=pressure["io_pressure_s"],
        survey_device=ints("survey_device"),
        survey_t_days=floats("survey_t_days"),
        survey_value_100=floats("survey_value_100"),
        survey_outcome=ints("survey_outcome"),
    )
    extras = {"disk_percent": floats("disk_percent")}
    return inputs, app_names, app_groups("present"), apps("present"), extras


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _counts(inputs: DeviceDayInputs, n: int) -> dict[str, npt.NDArray[np.int64]]:
    def count(group: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        return np.bincount(group, minlength=n).astype(np.int64)

    failed = np.asarray(inputs.probe_group)[~np.asarray(inputs.probe_ok, dtype=np.bool_)]
    return {
        "boots": count(inputs.boot_group),
        "logons": count(inputs.logon_group),
        "hangs": count(inputs.hang_group),
        "app_crashes": count(inputs.crash_group),
        "system_crashes": count(inputs.system_crash_group),
        "probes": count(inputs.probe_group),
        "probe_failures": count(failed),
    }


def _group_reduce(
    group: npt.ArrayLike, values: npt.ArrayLike, n: int, how: str
) -> npt.NDArray[np.float64]:
    """Per-group max or median of ``values`` (NaN values ignored; NaN for empty groups)."""
    g = np.asarray(group, dtype=np.intp)
    v = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(v)
    g, v = g[keep], v[keep]
    out = np.full(n, np.nan)
    if not len(v):
        return out
    if how == "max":
        np.fmax.at(out, g, v)
        return out
    order = np.lexsort((v, g))
    g, v = g[order], v[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    mid_lo, mid_hi = v[starts + (ends - starts - 1) // 2], v[starts + (ends - starts) // 2]
    out[g[starts]] = (mid_lo + mid_hi) / 2
    return out


def _measures(
    inputs: DeviceDayInputs, extras: dict[str, npt.NDArray[np.float64]], n: int
) -> dict[str, npt.NDArray[np.float64]]:
    """Raw daily measures kept beside the scores: medians of the durations, the pressure
    shares, the day's highest disk use (what detection watches besides the scores)."""
    active = np.bincount(inputs.resource_group, weights=inputs.interval_s, minlength=n)
    out = {
        "boot_s_median": _group_reduce(inputs.boot_group, inputs.boot_s, n, "median"),
        "logon_s_median": _group_reduce(inputs.logon_group, inputs.logon_s, n, "median"),
        "disk_percent_max": _group_reduce(inputs.resource_group, extras["disk_percent"], n, "max"),
    }
    for name, stalled in (
        ("cpu_pressure_share", inputs.cpu_pressure_s),
        ("io_pressure_share", inputs.io_pressure_s),
        ("memory_pressure_share", inputs.memory_pressure_s),
    ):
        share = np.full(n, np.nan)
        if len(stalled):
            total = np.bincount(inputs.resource_group, weights=np.nan_to_num(stalled), minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(active > 0, total / active, np.nan)
        out[name] = share
    answers, mean = _day_answers(inputs, n)
    out["survey_answers"] = np.where(answers > 0, answers, np.nan)
    out["survey_mean_100"] = mean
    return out


def _day_answers(
    inputs: DeviceDayInputs, n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per device-day: survey answers given that very day, and their mean on 0-100.

    Unlike the sentiment sub-score (which carries answers forward for weeks), these count
    only the day's own answers, so a period's sentiment can be summed from the rollups
    without borrowing from the period before.
    """
    day = np.floor(np.asarray(inputs.survey_t_days, dtype=np.float64)).astype(np.intp)
    value = np.asarray(inputs.survey_value_100, dtype=np.float64)
    outcome = np.asarray(inputs.survey_outcome, dtype=np.intp)
    ok = (outcome == _OUTCOME_INDEX["answered"]) & ~np.isnan(value)
    ok &= (day >= 0) & (day < inputs.n_days)
    g = np.asarray(inputs.survey_device, dtype=np.intp)[ok] * inputs.n_days + day[ok]
    count = np.bincount(g, minlength=n).astype(np.float64)
    total = np.bincount(g, weights=value[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)
    return count, np.asarray(mean, dtype=np.float64)


def score_block(
    block: Block,
    personas: Sequence[Persona],
    rows: Iterable[EventRow],
    wanted: set[tuple[int, int]] | None = None,
) -> ScoredBlock:
    """Score a block; return rows for its device-days with data (only ``wanted`` ones if given).

    A device-day row carries the total, the four sub-scores, every metric score, the
    sentiment confidence, active seconds, minutes lost by component, the points each metric
    cost (they sum to 100 - score) and the counts behind them — everything the explanations
    and the aggregates need without going back to raw events.
    """
    params = persona_arrays(personas)
    inputs, app_names, present_g, present_a, extras = build_inputs(block, personas, rows)
    scored = score_device_days(inputs, params, max_age_days=SURVEY_WINDOW_DAYS)
    ms = scored.metrics
    pg = inputs.persona_of_group()
    lost = points_lost(ms.scores, pg, params, ms.sentiment_confidence)
    minutes = time_lost(inputs, params, max(len(app_names), 1)).per_group
    n = inputs.n_groups
    counts = _counts(inputs, n)
    measures = _measures(inputs, extras, n)
    has_data = np.zeros(n, dtype=bool)
    for group in (
        inputs.boot_group,
        inputs.logon_group,
        inputs.hang_group,
        inputs.crash_group,
        inputs.system_crash_group,
        inputs.probe_group,
        inputs.resource_group,
        present_g,
    ):
        has_data[np.asarray(group, dtype=np.intp)] = True

    def keep(g: int) -> bool:
        # a device-day with no data gets no row: "not measured" is not a score
        return bool(has_data[g]) and (wanted is None or divmod(g, block.n_days) in wanted)

    device_days: list[dict[str, Any]] = []
    for g in range(n):
        if not keep(g):
            continue
        device, day = divmod(g, block.n_days)
        device_days.append(
            {
                "device_id": block.device_ids[device],
                "day": block.day(day),
                "persona": block.persona_names[device],
                "score": _opt(scored.total[g]),
                **{s: _opt(scored.subscores[g, k]) for k, s in enumerate(SUBSCORES)},
                "metrics": {m: _opt(ms.scores[g, j]) for j, m in enumerate(METRICS)},
                "points_lost": {
                    m: round(float(lost[g, j]), 6) for j, m in enumerate(METRICS) if lost[g, j] > 0
                },
                "sentiment_confidence": _opt(ms.sentiment_confidence[g]),
                "active_s": float(ms.active_s[g]),
                "time_lost_min": float(minutes[g].sum()),
                "time_lost": {c: float(minutes[g, k]) for k, c in enumerate(COMPONENTS)},
                "counts": {name: int(c[g]) for name, c in counts.items()},
                "measures": {name: _opt(m[g]) for name, m in measures.items()},
                "scoring_version": SCORING_VERSION,
            }
        )
    pairs = app_pair_scores(inputs, params, ms.active_s, present_g, present_a)
    app_days: list[dict[str, Any]] = []
    for i in range(len(pairs.group)):
        g = int(pairs.group[i])
        if not keep(g):
            continue
        device, day = divmod(g, block.n_days)
        app_days.append(
            {
                "device_id": block.device_ids[device],
                "day": block.day(day),
                "app_name": app_names[int(pairs.app[i])],
                "persona": block.persona_names[device],
                "score": _opt(pairs.score[i]),
                "hangs": int(pairs.hangs[i]),
                "crashes": int(pairs.crashes[i]),
                "time_lost_min": float(pairs.time_lost_min[i]),
            }
        )
    return ScoredBlock(device_days=device_days, app_days=app_days)
