"""Property-based tests of wire v1: every event type, generated from its annotated bounds.

The strategies are derived from the TypedDicts of :mod:`dexscope.wire` themselves (types,
``Literal`` values, ``annotated_types`` bounds, required and optional keys), so a field added
to the wire is generated here without touching this file. Each generated event goes through
the collector's own validation (``collector.ingest.service.parse_batch``: the pydantic
``TypeAdapter`` of the batch, tagged union on ``type``, unknown fields rejected).
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typing_extensions import is_typeddict

from agent.platform.common import HungApp
from agent.samplers import SamplerContext, event_base, load_builtin_samplers
from agent.samplers.app_hang import AppHangSampler, _Hang
from agent.samplers.health import HealthSampler
from agent.samplers.probe import ProbeResult, ProbeTarget, to_event
from agent.samplers.survey import response_event
from agent.spool import SpoolStats
from agent.surveys.model import Answer, Prompt, Question
from collector.errors import ApiError
from collector.ingest.schemas import BATCH, EVENT
from collector.ingest.service import parse_batch
from dexscope import wire

PROFILE = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EVENT_CLASSES: dict[str, type] = {
    typing.get_type_hints(cls)["type"].__args__[0]: cls for cls in typing.get_args(wire.Event)
}
_MISSING = object()


# -- strategies from the annotations ---------------------------------------------------------


def _bounds(metadata: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, at.Ge):
            out["ge"] = item.ge
        elif isinstance(item, at.Le):
            out["le"] = item.le
        elif isinstance(item, at.MinLen):
            out["min_len"] = item.min_length
        elif isinstance(item, at.MaxLen):
            out["max_len"] = item.max_length
    return out


def _optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.NotRequired


def _split(annotation: Any) -> tuple[Any, dict[str, Any]]:
    if typing.get_origin(annotation) in (typing.NotRequired, typing.Required):
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, _bounds(tuple(metadata))
    return annotation, {}


def _text(min_len: int, max_len: int) -> st.SearchStrategy[str]:
    short = st.text(min_size=min_len, max_size=min(max_len, max(min_len, 24)))
    # the exact upper bound, in a character outside ASCII (length is in characters)
    return st.one_of(short, st.just("é" * max_len)) if max_len > 24 else short


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """A strategy of valid *Python* values for one wire annotation."""
    base, b = _split(annotation)
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(base))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(base)))
    if origin is dict:
        key_type, value_type = typing.get_args(base)
        return st.dictionaries(strategy_for(key_type), strategy_for(value_type), max_size=3)
    if is_typeddict(base):
        return typed_dict(base)
    if base is type(None):
        return st.none()
    if base is bool:
        return st.booleans()
    if base is int:
        return st.integers(b.get("ge", -(2**53)), b.get("le", 2**53))
    if base is float:
        lo, hi = b.get("ge", -1e12), b.get("le", 1e12)
        return st.one_of(
            st.floats(lo, hi, allow_nan=False, allow_infinity=False),
            st.sampled_from([lo, hi]),
            st.integers(int(lo), int(hi)),  # JSON integers are valid numbers too
        )
    if base is str:
        return _text(b.get("min_len", 0), b.get("max_len", 200))
    if base is uuid.UUID:
        return st.uuids()
    if base is datetime:
        zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), UTC])
        return st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=zones)
    raise AssertionError(f"no strategy for wire annotation {annotation!r}")


@st.composite
def _typed_dict(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, Any] = {}
    for key in sorted(hints):
        if _optional(hints[key]) and not draw(st.booleans()):
            continue
        out[key] = draw(strategy_for(hints[key]))
    return out


def typed_dict(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    return _typed_dict(cls)


def to_json(value: Any) -> Any:
    """Python wire values to what JSON carries (UUID and datetime as ISO strings)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def batch_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "batch_id": str(uuid.uuid4()),
        "device_id": str(uuid.uuid4()),
        "agent_version": "0.1.0",
        "schema_version": 1,
        "sent_at": datetime.now(UTC).isoformat(),
        "events": events,
    }


def body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(batch_of(events), allow_nan=False).encode()


def event_of(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    return typed_dict(EVENT_CLASSES[event_type]).map(to_json)


def rejected(events: list[dict[str, Any]]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_batch(body(events))
    assert caught.value.status_code in (400, 422), caught.value
    return caught.value


# -- valid events validate and round-trip ----------------------------------------------------


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENT_CLASSES) == set(wire.EVENT_TYPES)


@pytest.mark.parametrize("event_type", wire.EVENT_TYPES)
@PROFILE
@given(data=st.data())
def test_valid_events_validate_and_round_trip(event_type: str, data: st.DataObject) -> None:
    events = data.draw(st.lists(event_of(event_type), min_size=1, max_size=3))
    batch = parse_batch(body(events))
    assert [e["type"] for e in batch["events"]] == [event_type] * len(events)
    for sent, got in zip(events, batch["events"], strict=True):
        assert set(got) == set(sent), "a field was dropped or invented"
    # JSON round trip through the adapter is a fixed point
    again = BATCH.validate_json(BATCH.dump_json(batch))
    assert again == batch
    assert BATCH.dump_python(again, mode="json") == BATCH.dump_python(batch, mode="json")


@PROFILE
@given(events=st.lists(st.sampled_from(wire.EVENT_TYPES).flatmap(event_of), min_size=1))
def test_mixed_batches_validate(events: list[dict[str, Any]]) -> None:
    assert len(parse_batch(body(events))["events"]) == len(events)


# -- mutated events are rejected -------------------------------------------------------------


def _numeric_bounded_fields(cls: type) -> list[tuple[str, Any, Any, type]]:
    out = []
    for key, annotation in typing.get_type_hints(cls, include_extras=True).items():
        base, b = _split(annotation)
        if base in (int, float) and ("ge" in b or "le" in b):
            out.append((key, b.get("ge"), b.get("le"), base))
    return out


def _numeric_cases() -> list[tuple[str, str, Any, Any, type]]:
    return [
        (event_type, key, ge, le, base)
        for event_type, cls in EVENT_CLASSES.items()
        for key, ge, le, base in _numeric_bounded_fields(cls)
    ]


@pytest.mark.parametrize(
    ("event_type", "key", "ge", "le", "base"),
    _numeric_cases(),
    ids=[f"{t}.{k}" for t, k, *_ in _numeric_cases()],
)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_out_of_range_numbers_are_rejected(
    event_type: str, key: str, ge: Any, le: Any, base: type, data: st.DataObject
) -> None:
    event = data.draw(event_of(event_type))
    sides = [s for s, bound in (("below", ge), ("above", le)) if bound is not None]
    side = data.draw(st.sampled_from(sides))
    step = 1 if base is int else data.draw(st.sampled_from([1e-6, 0.5, 1, 1e9]))
    event[key] = ge - step if side == "below" else le + step
    error = rejected([event])
    assert error.field == f"events[0].{key}", error


def test_out_of_range_numbers_cover_every_bounded_field() -> None:
    assert len(_numeric_cases()) >= 40  # the wire has dozens of bounded numbers


@pytest.mark.parametrize("event_type", wire.EVENT_TYPES)
@PROFILE
@given(data=st.data())
def test_unknown_fields_are_rejected(event_type: str, data: st.DataObject) -> None:
    event = data.draw(event_of(event_type))
    known = set(typing.get_type_hints(EVENT_CLASSES[event_type]))
    name = data.draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in known))
    event[name] = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=5)))
    error = rejected([event])
    assert error.field == f"events[0].{name}", error


@pytest.mark.parametrize("event_type", wire.EVENT_TYPES)
@PROFILE
@given(data=st.data())
def test_missing_required_fields_are_rejected(event_type: str, data: st.DataObject) -> None:
    cls = EVENT_CLASSES[event_type]
    event = data.draw(event_of(event_type))
    hints = typing.get_type_hints(cls, include_extras=True)
    required = sorted(k for k, v in hints.items() if not _optional(v))
    key = data.draw(st.sampled_from(required))
    del event[key]
    error = rejected([event])
    assert error.field == f"events[0].{key}" or (key == "type" and error.field == "events[0].type")


def _wrong_values(annotation: Any) -> st.SearchStrategy[Any]:
    """Values no reading of the annotation accepts (not even pydantic's lax coercions)."""
    base, _ = _split(annotation)
    structured = st.sampled_from([[1], {"a": 1}])
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        return st.one_of(structured, st.just("not-" + str(typing.get_args(base)[0])))
    if origin is dict or is_typeddict(base):
        return st.sampled_from([[1], "text", 3])
    if base in (int, float):
        return st.one_of(structured, st.just("many"), st.just(None))
    if base is bool:
        return st.one_of(structured, st.just("maybe"), st.just(2))
    if base is str:
        return st.one_of(structured, st.just(12), st.just(None), st.just(True))
    if base is uuid.UUID:
        return st.one_of(structured, st.just("not-a-uuid"), st.just(None))
    if base is datetime:
        return st.one_of(structured, st.just("yesterday"), st.just("2026-13-40T00:00:00Z"))
    raise AssertionError(annotation)


@pytest.mark.parametrize("event_type", wire.EVENT_TYPES)
@PROFILE
@given(data=st.data())
def test_wrong_types_are_rejected(event_type: str, data: st.DataObject) -> None:
    hints = typing.get_type_hints(EVENT_CLASSES[event_type], include_extras=True)
    event = data.draw(event_of(event_type))
    key = data.draw(st.sampled_from(sorted(k for k in hints if k != "type")))
    event[key] = data.draw(_wrong_values(hints[key]))
    error = rejected([event])
    assert error.field is not None and error.field.startswith(f"events[0].{key}"), error


def test_unknown_event_type_is_rejected_by_name() -> None:
    error = rejected([{"type": "keylogger", "event_id": str(uuid.uuid4())}])
    assert error.code == "unknown_event_type"
    assert error.field == "events[0].type"


@pytest.mark.parametrize(
    ("key", "value"), [("ts", 1_764_000_000), ("cpu_percent", "12"), ("interval_s", True)]
)
def test_lax_coercions_are_rejected(key: str, value: Any) -> None:
    event = to_json(
        {
            **event_base(),
            "type": "resource_sample",
            "interval_s": 60,
            "cpu_percent": 1,
            "memory_percent": 2,
        }
    )
    event[key] = value
    rejected([event])


@pytest.mark.parametrize("literal", ["Infinity", "NaN", "-Infinity"])
def test_json_infinity_and_nan_are_rejected(literal: str) -> None:
    health = {
        **to_json(event_base()),
        "type": "agent_health",
        "interval_s": 60,
        "cpu_percent": 1,
        "rss_mb": 1,
        "spool_events": 0,
        "spool_bytes": 0,
        "dropped_events_total": 0,
        "upload_failures_total": 0,
        "samplers": {"x": {"runs": 1, "failures": 0, "last_duration_ms": 1.5}},
    }
    text = json.dumps(batch_of([health])).replace("1.5}", f"{literal}}}")
    assert literal in text
    with pytest.raises(ApiError):
        parse_batch(text.encode())


# -- the agent's own builders produce events the collector accepts ---------------------------


def _accept(event: Any) -> None:
    from agent.jsonutil import dumps

    text = dumps(event)
    EVENT.validate_json(text)
    parse_batch(body([json.loads(text)]))


@PROFILE
@given(
    name=_text(1, 256),
    ok=st.booleans(),
    phases=st.lists(
        st.one_of(st.none(), st.floats(0, 7 * 86400, allow_nan=False)), min_size=5, max_size=5
    ),
    http_status=st.one_of(st.none(), st.integers(100, 599)),
    error=st.one_of(st.none(), st.text(max_size=2000)),
)
def test_probe_builder_events_are_accepted(
    name: str,
    ok: bool,
    phases: list[float | None],
    http_status: int | None,
    error: str | None,
) -> None:
    dns, tcp, tls, ttfb, total = phases
    target = ProbeTarget(name=name, url="https://example.invalid/")
    result = ProbeResult(
        ok=ok,
        total_s=total or 0.0,
        dns_s=dns,
        tcp_s=tcp,
        tls_s=tls,
        ttfb_s=ttfb,
        http_status=http_status,
        error=error,
    )
    _accept(to_event(target, result, datetime.now(UTC)))


@PROFILE
@given(
    prompt_id=st.one_of(st.uuids().map(str), st.text(max_size=80)),
    campaign_id=_text(1, 64),
    question_type=st.sampled_from(sorted(wire.SURVEY_SCALES)),
    trigger=st.sampled_from(["pulse", "event", "control"]),
    outcome=st.sampled_from(wire.SURVEY_OUTCOMES),
    comment=st.one_of(st.none(), st.text(max_size=2500)),
    latency=st.one_of(st.none(), st.floats(0, 30 * 86400, allow_nan=False)),
    trigger_event_id=st.one_of(st.none(), st.uuids().map(str)),
    data=st.data(),
)
def test_survey_builder_events_are_accepted(
    prompt_id: str,
    campaign_id: str,
    question_type: Any,
    trigger: Any,
    outcome: Any,
    comment: str | None,
    latency: float | None,
    trigger_event_id: str | None,
    data: st.DataObject,
) -> None:
    lo, hi = wire.SURVEY_SCALES[question_type]
    now = datetime.now(UTC)
    prompt = Prompt(
        prompt_id=prompt_id,
        campaign_id=campaign_id,
        question=Question(type=question_type, text="How was it?"),
        trigger=trigger,
        created_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=1),
        trigger_event_id=trigger_event_id,
    )
    answer = Answer(
        prompt_id=prompt_id,
        campaign_id=campaign_id,
        outcome=outcome,
        shown_at=None if latency is None else now - timedelta(seconds=latency),
        answered_at=now,
        value=data.draw(st.integers(lo, hi)) if outcome == "answered" else None,
        comment=comment,
    )
    _accept(response_event(prompt, answer))


@PROFILE
@given(
    app_name=_text(1, 256),
    app_version=st.one_of(st.none(), _text(0, 128)),
    reason=st.sampled_from(["window_not_responding", "d_state", "spinning"]),
    duration=st.floats(0, 30 * 86400, allow_nan=False),
)
def test_app_hang_builder_events_are_accepted(
    app_name: str, app_version: str | None, reason: Any, duration: float
) -> None:
    app = HungApp(pid=4242, app_name=app_name, reason=reason, app_version=app_version)
    now = datetime.now(UTC)
    hang = _Hang(app=app, first_seen=0.0, last_seen=duration, first_wall=now)
    _accept(AppHangSampler._event(hang, duration))


_COUNT = st.integers(0, 2**31 - 1)


@PROFILE
@given(
    spool=st.tuples(_COUNT, st.integers(0, 2**40), _COUNT, _COUNT),
    samplers=st.dictionaries(
        st.sampled_from(sorted(load_builtin_samplers())),
        st.fixed_dictionaries(
            {"runs": _COUNT, "failures": _COUNT, "last_duration_ms": st.floats(0, 1e9)},
            optional={"last_error": st.text(max_size=500)},
        ),
        max_size=4,
    ),
    state=st.fixed_dictionaries(
        {},
        optional={
            "throttled": st.booleans(),
            "watchdog_restarts_total": _COUNT,
            "survey_skips": st.dictionaries(st.text(max_size=100), _COUNT, max_size=3),
        },
    ),
)
def test_health_builder_events_are_accepted(
    spool: tuple[int, int, int, int], samplers: dict[str, Any], state: dict[str, Any]
) -> None:
    events, size, dropped, failures = spool
    stats = SpoolStats(
        events=events,
        bytes=size,
        oldest_created=None,
        counters={"dropped_events_total": dropped, "upload_failures_total": failures},
        last_upload_at=None,
        last_error=None,
        last_error_at=None,
    )
    ctx = SamplerContext(
        Path("."), lambda: stats, lambda: samplers, lambda key: None, agent_state=dict(state)
    )
    for event in HealthSampler().collect(ctx):
        _accept(event)


def test_event_base_is_a_valid_envelope() -> None:
    base = event_base()
    _accept({**base, "type": "logon", "logon_duration_s": 1.5, "first_logon": False, "source": "x"})
