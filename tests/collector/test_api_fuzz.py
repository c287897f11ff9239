"""Schemathesis against a running collector: no 5xx, every API error in the contract's shape.

The operations come from the app's OpenAPI document (``create_app(...).openapi()``, read at
collection time so that each operation is its own test case); the first test checks that
the running collector serves exactly that document at ``/openapi.json``. Every case is sent
to a real ``dexscope collector serve`` on a fresh SQLite database: people's routes with an
admin API key of a seeded tenant, the agent's routes (``/api/v1/ingest``,
``/api/v1/agent/config``) with an enrolled device's token. Checks: schemathesis's
``not_a_server_error`` and :func:`error_shape` (every 4xx answer of ``/api/`` is
``{"error": {"code": str, "message": str, "field"?: str}}``, nothing else).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import tomli_w
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet

from collector.app import create_app
from collector.deps import MAX_PAGE_OFFSET
from collector.settings import Settings
from tests.support import CollectorProcess, Device, create_tenant, enroll, make_batch, now_utc

OPENAPI: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolves(doc: dict[str, Any], ref: str) -> bool:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def unresolved_refs(doc: dict[str, Any]) -> dict[str, list[str]]:
    """``$ref`` of each operation that does not resolve in the document."""
    out: dict[str, list[str]] = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            bad = sorted({r for r in _refs(operation) if not _resolves(doc, r)})
            if bad:
                out[f"{method.upper()} {path}"] = bad
    return out


def hoisted(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` whose inline ``$defs`` (schemas pasted in with ``openapi_extra``)
    move to ``components/schemas``, so their ``#/$defs/...`` references resolve."""
    doc = json.loads(json.dumps(doc))
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    counter = iter(range(10**6))

    def rewrite(node: Any, names: dict[str, str]) -> Any:
        if isinstance(node, dict):
            if "$defs" in node:
                prefix = f"Inline{next(counter)}_"
                local = {name: prefix + name for name in node["$defs"]}
                for name, schema in node.pop("$defs").items():
                    components[local[name]] = rewrite(schema, {**names, **local})
                names = {**names, **local}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = "#/components/schemas/" + names[ref.removeprefix("#/$defs/")]
            return {k: rewrite(v, names) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v, names) for v in node]
        return node

    doc["paths"] = rewrite(doc["paths"], {})
    assert not unresolved_refs(doc), unresolved_refs(doc)
    return doc


SCHEMA = schemathesis.openapi.from_dict(hoisted(OPENAPI))


@schemathesis.serializer("application/toml")
def _toml(ctx: Any, value: Any) -> bytes:
    """XLA files may be posted as TOML; what TOML cannot say goes as (invalid) JSON text."""
    try:
        return tomli_w.dumps(value).encode()
    except (TypeError, ValueError, AttributeError):
        return json.dumps(value).encode()


DEVICE_ROUTES = {"/api/v1/ingest", "/api/v1/agent/config"}


@dataclass
class Target:
    url: str
    admin_key: str
    device: Device


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("api-fuzz")
    database_url = f"sqlite:///{tmp / 'collector.db'}"
    with CollectorProcess(database_url, tmp / "collector.log") as collector:
        tenant = create_tenant(database_url)
        device = enroll(collector.url, tenant.enrollment_token, "fuzz-host")
        yield Target(collector.url, tenant.api_key, device)


def error_shape(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every 4xx of the API is ``{"error": {"code", "message", "field"?}}`` and no more."""
    if not 400 <= response.status_code < 500 or not case.path.startswith("/api/"):
        return None
    what = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    try:
        body = json.loads(response.text)
    except ValueError as exc:
        raise AssertionError(f"an error that is not JSON: {what}") from exc
    assert isinstance(body, dict), what
    assert set(body) == {"error"}, what
    error = body["error"]
    assert isinstance(error, dict), what
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}, what
    assert isinstance(error["code"], str) and error["code"], what
    assert isinstance(error["message"], str) and error["message"], what
    assert isinstance(error.get("field", ""), str), what
    return None


def test_the_running_collector_serves_this_document(target: Target) -> None:
    served = httpx.get(f"{target.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == OPENAPI
    assert len(OPENAPI["paths"]) >= 25


def test_every_reference_of_the_document_resolves() -> None:
    """Bodies documented with a pasted JSON Schema have their $defs hoisted into
    components (collector/openapi.py), so every $ref points at something."""
    assert unresolved_refs(OPENAPI) == {}
    assert "$defs" not in json.dumps(OPENAPI["paths"])


def _with_body() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


@pytest.mark.parametrize(("method", "path"), _with_body())
def test_bodies_are_generated_after_hoisting(method: str, path: str) -> None:
    bodies: list[Any] = []

    @given(SCHEMA[path][method].as_strategy())
    @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
    def draw(case: schemathesis.Case[Any]) -> None:
        bodies.append(case.body)

    draw()
    assert bodies
    assert not any(isinstance(b, NotSet) for b in bodies), f"{method} {path}: no body generated"


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_operation_answers_within_the_contract(
    case: schemathesis.Case[Any], target: Target
) -> None:
    token = target.device.token if case.path in DEVICE_ROUTES else target.admin_key
    case.call_and_validate(
        base_url=target.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, error_shape],
        timeout=60,
    )


@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/alerts", "/api/v1/tickets"])
def test_a_page_offset_beyond_a_database_integer_is_refused_not_a_server_error(
    target: Target, path: str
) -> None:
    """Schemathesis found ``offset=3020992347962205750165504`` answered with a 500: the
    driver cannot bind it. The largest integer both databases bind is still a page."""
    headers = {"Authorization": f"Bearer {target.admin_key}"}
    too_far = httpx.get(
        f"{target.url}{path}", params={"offset": MAX_PAGE_OFFSET + 1}, headers=headers, timeout=30
    )
    assert too_far.status_code == 422, too_far.text
    assert too_far.json()["error"]["field"] == "query.offset"
    last = httpx.get(
        f"{target.url}{path}", params={"offset": MAX_PAGE_OFFSET}, headers=headers, timeout=30
    )
    assert last.status_code == 200, last.text
    assert last.json()["items"] == []


def test_an_event_cursor_beyond_a_database_integer_is_refused(target: Target) -> None:
    """The events page's ``after`` cursor is bound the same way as an offset."""
    url = f"{target.url}/api/v1/devices/{target.device.device_id}/events"
    headers = {"Authorization": f"Bearer {target.admin_key}"}
    refused = httpx.get(url, params={"after": MAX_PAGE_OFFSET + 1}, headers=headers, timeout=30)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "query.after"
    empty = httpx.get(url, params={"after": MAX_PAGE_OFFSET}, headers=headers, timeout=30)
    assert empty.status_code == 200, empty.text
    assert empty.json()["items"] == []


def test_ingest_refuses_json_infinity(database_url: str, tmp_path: Path) -> None:
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        tenant = create_tenant(database_url)
        device = enroll(collector.url, tenant.enrollment_token, "inf-host")
        health = {
            "type": "agent_health",
            "event_id": str(uuid.uuid4()),
            "ts": now_utc().isoformat(),
            "interval_s": 60,
            "cpu_percent": 1,
            "rss_mb": 1,
            "spool_events": 0,
            "spool_bytes": 0,
            "dropped_events_total": 0,
            "upload_failures_total": 0,
            "samplers": {"x": {"runs": 1, "failures": 0, "last_duration_ms": 1.5}},
        }
        text = json.dumps(make_batch(device.device_id, [health])).replace("1.5}", "Infinity}")
        response = httpx.post(
            f"{collector.url}/api/v1/ingest",
            content=text,
            headers={**device.headers, "Content-Type": "application/json"},
            timeout=30,
        )
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
