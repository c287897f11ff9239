"""Personas and their parameter arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scoring.personas import (
    DEFAULT_PERSONAS,
    KNOWLEDGE_WORKER_THRESHOLDS,
    METRIC_SUBSCORE,
    METRICS,
    SUBSCORES,
    Persona,
    persona_arrays,
)


def _by_name() -> dict[str, Persona]:
    return {p.name: p for p in DEFAULT_PERSONAS}


def test_default_personas_cover_the_brief() -> None:
    assert set(_by_name()) >= {
        "knowledge_worker",
        "developer",
        "contact_centre_agent",
        "field_worker",
        "executive",
    }
    assert DEFAULT_PERSONAS[0].name == "knowledge_worker"


def test_personas_differ_as_documented() -> None:
    p = _by_name()
    kw, dev, cc, ex = (
        p[n] for n in ("knowledge_worker", "developer", "contact_centre_agent", "executive")
    )
    assert dev.thresholds["boot"] > kw.thresholds["boot"]
    assert cc.thresholds["logon"] < kw.thresholds["logon"]
    assert cc.frustrating_level("app_hang_rate") < kw.frustrating_level("app_hang_rate")
    assert ex.subscore_weights["sentiment"] == max(ex.subscore_weights.values())
    assert ex.subscore_weights["sentiment"] > kw.subscore_weights["sentiment"]


def test_persona_arrays_are_indexed_by_persona_id_and_metric() -> None:
    arrays = persona_arrays()
    n = len(DEFAULT_PERSONAS)
    assert arrays.threshold.shape == arrays.frustrating.shape == (n, len(METRICS))
    assert arrays.subscore_weight.shape == (n, len(SUBSCORES))
    boot = METRICS.index("boot")
    for i, persona in enumerate(DEFAULT_PERSONAS):
        assert arrays.names[i] == persona.name
        assert arrays.threshold[i, boot] == persona.thresholds["boot"]
        assert arrays.frustrating[i, boot] == 4 * persona.thresholds["boot"]  # Apdex F = 4T
    assert np.isnan(arrays.threshold[:, METRICS.index("sentiment")]).all()
    assert arrays.app_crash_cost_min.tolist() == [5.0, 5.0, 5.0, 5.0, 10.0]
    assert arrays.system_crash_cost_min.tolist() == [15.0, 15.0, 15.0, 15.0, 20.0]


def test_every_metric_feeds_one_subscore_and_every_subscore_has_one() -> None:
    assert len(METRIC_SUBSCORE) == len(METRICS)
    assert set(METRIC_SUBSCORE.tolist()) == set(range(len(SUBSCORES)))


def _kw(**changes: object) -> Persona:
    base: dict[str, Any] = dict(
        name="x",
        description="x",
        thresholds=dict(KNOWLEDGE_WORKER_THRESHOLDS),
        subscore_weights={"startup": 1.0},
        frustrating={
            "app_hang_rate": 1.0,
            "app_crash_rate": 1.0,
            "system_crash_rate": 1.0,
            "probe_failure_rate": 1.0,
        },
    )
    base.update(changes)
    return Persona(**base)


def test_persona_validation() -> None:
    _kw()  # valid
    with pytest.raises(ValueError, match="unknown"):
        _kw(subscore_weights={"speed": 1.0})
    with pytest.raises(ValueError, match="missing"):
        _kw(thresholds={"boot": 60.0})
    with pytest.raises(ValueError, match="good < frustrating"):
        _kw(frustrating={})  # a rate with good 0 and no frustrating level
    with pytest.raises(ValueError, match="minimum"):
        _kw(min_subscores=5)
    with pytest.raises(ValueError):
        persona_arrays([])


def test_docs_persona_table_matches_the_code() -> None:
    """docs/scoring.md's persona table states every default threshold and weight."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "scoring.md").read_text()
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `") or line.startswith("| weight `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    header = next(line for line in text.splitlines() if line.startswith("| metric (unit)"))
    names = [c.strip().strip("`") for c in header.strip("|").split("|")[1:]]
    assert names == [p.name for p in DEFAULT_PERSONAS]
    units = {"boot": "s", "logon": "s", "hang_duration": "s", "probe_latency": "s"}
    for metric in METRICS[:-1]:
        unit = units.get(metric, "share" if "pressure" in metric else "/h")
        cells = rows[f"`{metric}` ({unit})"]
        for persona, cell in zip(DEFAULT_PERSONAS, cells, strict=True):
            good, bad = (float(x) for x in cell.split(" / "))
            assert (good, bad) == (persona.thresholds[metric], persona.frustrating_level(metric))
    for sub in SUBSCORES:
        cells = rows[f"weight `{sub}`"]
        assert [float(c) for c in cells] == [p.subscore_weights[sub] for p in DEFAULT_PERSONAS]
    for attr in (
        "app_crash_cost_min",
        "system_crash_cost_min",
        "hang_default_s",
        "min_subscores",
        "alert_min_score_drop",
    ):
        assert [float(c) for c in rows[f"`{attr}`"]] == [
            float(getattr(p, attr)) for p in DEFAULT_PERSONAS
        ]
