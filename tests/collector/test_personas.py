"""Personas: rule matching (pure), and the API over real HTTP on SQLite and PostgreSQL.

The pure part checks each rule criterion and the assignment order. The HTTP part runs a
real collector: the built-ins listed with their effective parameters, create / override /
update with version bumps, every 422 naming its field, roles, tenant isolation,
assignment at enrollment (hostname pattern, tag, hardware class, hint, default),
reassignment when a rule is added, the manual override, the device inventory, and
``personas_for_tenant`` read back from the same database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import scoring.personas as sp
from collector.db import make_engine, make_sessionmaker
from collector.migrate import upgrade
from collector.personas import service
from collector.personas.rules import (
    Candidate,
    DeviceFacts,
    choose_persona,
    glob_error,
    hardware_class,
    rule_matches,
)
from collector.settings import normalise_database_url
from scoring.simulate import SimConfig, make_devices
from tests.support import CollectorProcess, Tenant, create_tenant, run_cli

BUILTIN_NAMES = [p.name for p in sp.DEFAULT_PERSONAS]

# --- rule matching, pure ------------------------------------------------------------------

LAPTOP = DeviceFacts(
    hostname="DEV-Lap-042",
    os="windows",
    hardware={"hardware_class": "high", "cpu_count": 16},
    tags={"group": "engineering", "site": "paris"},
    persona_hint="executive",
)


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ({"hostname": "dev-*"}, True),
        ({"hostname": "DEV-LAP-0[0-4]?"}, True),
        ({"hostname": "dev-lap-0[!4]*"}, False),
        ({"hostname": "ws-*"}, False),
        ({"device_group": "engineering"}, True),
        ({"device_group": "Engineering"}, False),
        ({"tags": {"site": "paris"}}, True),
        ({"tags": {"site": "paris", "group": "engineering"}}, True),
        ({"tags": {"site": "paris", "floor": "3"}}, False),
        ({"hardware_class": "HIGH"}, True),
        ({"hardware_class": "low"}, False),
        ({"os": "windows"}, True),
        ({"os": "linux"}, False),
        ({"os": "windows", "hostname": "dev-*", "device_group": "engineering"}, True),
        ({"os": "windows", "hostname": "ws-*"}, False),
        ({}, False),
    ],
)
def test_rule_criteria(rule: dict[str, Any], matches: bool) -> None:
    assert rule_matches(rule, LAPTOP) is matches


def test_hardware_class_comes_from_the_simulator_key_or_class() -> None:
    config = SimConfig(devices=20, days=1, seed=3, end=datetime(2026, 11, 2, tzinfo=UTC))
    for device in make_devices(config):
        hardware = device.enroll_request("token", "0.1.0")["hardware"]
        assert hardware_class(hardware) == device.hardware_class
        facts = DeviceFacts(device.hostname, device.os, hardware)
        assert rule_matches({"hardware_class": device.hardware_class.upper()}, facts)
    assert hardware_class({"hardware_class": "mid", "class": "x"}) == "mid"
    assert hardware_class({"class": "rugged"}) == "rugged"
    assert hardware_class({"cpu_count": 4}) is None
    assert not rule_matches({"hardware_class": "mid"}, DeviceFacts("h", "linux"))


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("dev-*", True),
        ("ws-[0-9][0-9]?", True),
        ("ws-[!a]*", True),
        ("ws-[0-9", False),
        ("ws-]", False),
        ("ws-[]", False),
        ("ws-[!]", False),
        ("ws [1]", False),
        ("ws/1", False),
        ("", False),
    ],
)
def test_glob_validation(pattern: str, ok: bool) -> None:
    assert (glob_error(pattern) is None) is ok


def test_assignment_order() -> None:
    known = {*BUILTIN_NAMES, "engineering", "paris"}
    by_group = Candidate("engineering", 50, [{"device_group": "engineering"}])
    by_site = Candidate("paris", 10, [{"tags": {"site": "paris"}}])
    same_priority = Candidate("aaa", 50, [{"os": "windows"}])
    # first matching persona by priority, then name
    assert choose_persona(LAPTOP, [by_group, by_site], known, "kw") == ("paris", "rule")
    assert choose_persona(LAPTOP, [by_group, same_priority], known | {"aaa"}, "kw") == (
        "aaa",
        "rule",
    )
    # an override beats every rule; an unknown override is ignored
    overridden = DeviceFacts(**{**LAPTOP.__dict__, "persona_override": "developer"})
    assert choose_persona(overridden, [by_site], known, "kw") == ("developer", "override")
    stale = DeviceFacts(**{**LAPTOP.__dict__, "persona_override": "gone"})
    assert choose_persona(stale, [by_site], known, "kw") == ("paris", "rule")
    # no rule matches: the hint if known, else the default
    nothing = Candidate("paris", 10, [{"hostname": "ws-*"}])
    assert choose_persona(LAPTOP, [nothing], known, "kw") == ("executive", "hint")
    unknown_hint = DeviceFacts(**{**LAPTOP.__dict__, "persona_hint": "sales"})
    assert choose_persona(unknown_hint, [nothing], known, "kw") == ("kw", "default")


def test_overrides_merge_into_the_base() -> None:
    developer = service.builtin_personas()["developer"]
    made = service.apply_overrides(
        developer,
        "build-farm",
        None,
        {"thresholds": {"boot": 300.0}, "subscore_weights": {"sentiment": 0.0}, "min_samples": 2},
    )
    assert made.name == "build-farm" and made.description == developer.description
    assert made.thresholds["boot"] == 300.0
    assert made.frustrating_level("boot") == 1200.0
    assert made.thresholds["cpu_pressure"] == developer.thresholds["cpu_pressure"]
    assert made.frustrating_level("cpu_pressure") == developer.frustrating_level("cpu_pressure")
    assert made.subscore_weights == {**developer.subscore_weights, "sentiment": 0.0}
    assert made.min_samples == 2 and made.min_active_s == developer.min_active_s
    assert service.default_persona_name() == "knowledge_worker"


# --- over HTTP ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    """One collector per backend."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with CollectorProcess(module_database_url, log) as proc:
        yield proc


def _api_key(collector: CollectorProcess, role: str, tenant_id: str | None) -> str:
    args = ["admin", "create-api-key", "--role", role, "--database-url", collector.database_url]
    if tenant_id is not None:
        args += ["--tenant", tenant_id]
    key: str = json.loads(run_cli(*args, "--json").stdout)["api_key"]
    return key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post(collector: CollectorProcess, key: str, body: dict[str, Any] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{collector.url}/api/v1/personas",
        content=content,
        headers={"Content-Type": "application/json", **_auth(key)},
        timeout=30,
    )


def _put_persona(
    collector: CollectorProcess, key: str, device_id: str, body: dict[str, Any]
) -> httpx.Response:
    return httpx.put(
        f"{collector.url}/api/v1/devices/{device_id}/persona",
        json=body,
        headers=_auth(key),
        timeout=30,
    )


def _get(collector: CollectorProcess, key: str, path: str) -> Any:
    response = httpx.get(f"{collector.url}/api/v1{path}", headers=_auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def _enroll(
    collector: CollectorProcess,
    tenant: Tenant,
    hostname: str | None = None,
    persona_hint: str | None = None,
    tags: dict[str, str] | None = None,
    hardware: dict[str, Any] | None = None,
    os_name: str = "linux",
) -> str:
    body: dict[str, Any] = {
        "enrollment_token": tenant.enrollment_token,
        "hostname": hostname or f"ws-{uuid.uuid4().hex[:6]}",
        "os": os_name,
        "os_version": "6.1",
        "hardware": hardware or {"cpu_count": 4},
        "agent_version": "0.1.0",
        "persona_hint": persona_hint,
        "tags": tags or {},
    }
    response = httpx.post(f"{collector.url}/api/v1/enroll", json=body, timeout=30)
    assert response.status_code == 201, response.text
    device_id: str = response.json()["device_id"]
    return device_id


def _assigned(collector: CollectorProcess, tenant: Tenant, device_id: str) -> tuple[str, str]:
    device = _get(collector, tenant.api_key, f"/devices/{device_id}")
    return device["persona"], device["persona_source"]


def _personas(collector: CollectorProcess, key: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in _get(collector, key, "/personas")["items"]}


def test_builtins_are_listed_with_every_effective_parameter(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    items = _get(collector, t.api_key, "/personas")["items"]
    assert [p["name"] for p in items] == BUILTIN_NAMES
    for item, persona in zip(items, sp.DEFAULT_PERSONAS, strict=True):
        assert item["builtin"] is True and item["customised"] is False
        assert item["version"] == 0 and item["definition"] == {} and item["rules"] == []
        assert item["description"] == persona.description
        assert item["default"] is (persona.name == "knowledge_worker")
        effective = item["effective"]
        assert effective["thresholds"] == dict(persona.thresholds)
        assert effective["frustrating"] == {
            m: persona.frustrating_level(m) for m in persona.thresholds
        }
        assert effective["subscore_weights"] == dict(persona.subscore_weights)
        assert effective["metric_weights"] == dict(persona.metric_weights)
        assert effective["min_active_s"] == persona.min_active_s
        assert effective["app_crash_cost_min"] == persona.app_crash_cost_min
    one = _get(collector, t.api_key, "/personas/developer")
    assert one == items[1]
    missing = httpx.get(
        f"{collector.url}/api/v1/personas/nobody", headers=_auth(t.api_key), timeout=30
    )
    _error(missing, 404, "not_found")


def test_override_a_builtin_and_extend_one(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    override = {"name": "developer", "definition": {"thresholds": {"boot": 150}}}
    created = _post(collector, t.api_key, override)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["builtin"] is True and out["customised"] is True and out["version"] == 1
    assert out["definition"] == {"thresholds": {"boot": 150.0}}
    assert out["effective"]["thresholds"]["boot"] == 150.0
    assert out["effective"]["frustrating"]["boot"] == 600.0
    developer = service.builtin_personas()["developer"]
    assert out["effective"]["thresholds"]["logon"] == developer.thresholds["logon"]

    # the same body again changes nothing; a different one replaces it and bumps version
    same = _post(collector, t.api_key, override)
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = _post(
        collector,
        t.api_key,
        {"name": "developer", "definition": {"thresholds": {"logon": 60}}, "priority": 5},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["priority"] == 5
    assert changed.json()["effective"]["thresholds"]["boot"] == developer.thresholds["boot"]
    assert changed.json()["effective"]["thresholds"]["logon"] == 60.0

    custom = _post(
        collector,
        t.api_key,
        {
            "name": "traders",
            "description": "Trading floor: every second counts.",
            "base": "contact_centre_agent",
            "definition": {
                "thresholds": {"logon": 10, "app_hang_rate": 0.1},
                "frustrating": {"app_hang_rate": 0.3},
                "subscore_weights": {"sentiment": 0.2},
                "metric_weights": {"app_hang_rate": 4},
                "min_answers": 3,
                "app_crash_cost_min": 12.5,
                "alert_min_score_drop": 15,
            },
            "rules": [{"device_group": "trading"}],
        },
    )
    assert custom.status_code == 201, custom.text
    body = custom.json()
    assert body["builtin"] is False and body["base"] == "contact_centre_agent"
    cca = service.builtin_personas()["contact_centre_agent"]
    eff = body["effective"]
    assert eff["thresholds"]["logon"] == 10.0
    assert eff["thresholds"]["hang_duration"] == cca.thresholds["hang_duration"]
    assert eff["frustrating"]["app_hang_rate"] == 0.3
    assert eff["subscore_weights"] == {**cca.subscore_weights, "sentiment": 0.2}
    assert eff["metric_weights"]["app_hang_rate"] == 4.0
    assert eff["min_answers"] == 3 and eff["app_crash_cost_min"] == 12.5
    assert eff["alert_min_score_drop"] == 15.0  # detection follows the persona too
    assert body["description"] == "Trading floor: every second counts."

    # no base: a custom persona extends the default persona
    plain = _post(collector, t.api_key, {"name": "interns"}).json()
    assert plain["base"] == "knowledge_worker"
    assert plain["effective"] == _personas(collector, t.api_key)["knowledge_worker"]["effective"]

    names = [p["name"] for p in _get(collector, t.api_key, "/personas")["items"]]
    assert names == [*BUILTIN_NAMES, "interns", "traders"]

    # personas_for_tenant reads the same rows back as scoring Persona objects
    engine = make_engine(normalise_database_url(collector.database_url))
    try:
        with make_sessionmaker(engine)() as session:
            personas = service.personas_for_tenant(session, uuid.UUID(t.tenant_id))
    finally:
        engine.dispose()
    assert all(isinstance(p, sp.Persona) for p in personas)
    assert [p.name for p in personas] == [*BUILTIN_NAMES, "interns", "traders"]
    by_name = {p.name: p for p in personas}
    assert by_name["developer"].thresholds["logon"] == 60.0
    assert by_name["developer"].thresholds["boot"] == developer.thresholds["boot"]
    assert by_name["traders"].thresholds["app_hang_rate"] == 0.1
    assert by_name["traders"].frustrating_level("app_hang_rate") == 0.3
    assert by_name["traders"].min_answers == 3
    assert by_name["executive"] == service.builtin_personas()["executive"]
    arrays = sp.persona_arrays(personas)
    assert arrays.names == tuple(p.name for p in personas)


def _valid() -> dict[str, Any]:
    return {"name": f"p-{uuid.uuid4().hex[:8]}", "base": "developer"}


_SHARED: dict[str, Tenant] = {}


def _shared(collector: CollectorProcess) -> Tenant:
    """One tenant for the 422 cases of this collector (a tenant per case is slow)."""
    if collector.url not in _SHARED:
        _SHARED[collector.url] = create_tenant(collector.database_url)
    return _SHARED[collector.url]


BAD_INPUTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown threshold metric": (
        {"definition": {"thresholds": {"boot_time": 10}}},
        "definition.thresholds.boot_time",
        "validation_error",
    ),
    "unknown frustrating metric": (
        {"definition": {"frustrating": {"sentiment": 10}}},
        "definition.frustrating.sentiment",
        "validation_error",
    ),
    "unknown metric weight": (
        {"definition": {"metric_weights": {"gpu": 1}}},
        "definition.metric_weights.gpu",
        "validation_error",
    ),
    "unknown sub-score": (
        {"definition": {"subscore_weights": {"speed": 1}}},
        "definition.subscore_weights.speed",
        "validation_error",
    ),
    "negative metric weight": (
        {"definition": {"metric_weights": {"boot": -1}}},
        "definition.metric_weights.boot",
        "validation_error",
    ),
    "negative sub-score weight": (
        {"definition": {"subscore_weights": {"startup": -0.5}}},
        "definition.subscore_weights.startup",
        "validation_error",
    ),
    "all sub-score weights zero": (
        {
            "definition": {
                "subscore_weights": {
                    "startup": 0,
                    "responsiveness": 0,
                    "stability": 0,
                    "sentiment": 0,
                }
            }
        },
        "definition.subscore_weights",
        "validation_error",
    ),
    "zero duration threshold": (
        {"definition": {"thresholds": {"boot": 0}}},
        "definition.thresholds.boot",
        "validation_error",
    ),
    "negative rate threshold": (
        {"definition": {"thresholds": {"app_crash_rate": -0.1}}},
        "definition.thresholds.app_crash_rate",
        "validation_error",
    ),
    "pressure above 1": (
        {"definition": {"thresholds": {"cpu_pressure": 1.5}}},
        "definition.thresholds.cpu_pressure",
        "validation_error",
    ),
    "frustrating below threshold": (
        {"definition": {"thresholds": {"logon": 30}, "frustrating": {"logon": 20}}},
        "definition.frustrating.logon",
        "validation_error",
    ),
    "threshold above the base's frustrating level": (
        {"definition": {"thresholds": {"cpu_pressure": 0.6}}},
        "definition.thresholds.cpu_pressure",
        "validation_error",
    ),
    "threshold as a string": (
        {"definition": {"thresholds": {"boot": "60"}}},
        "definition.thresholds.boot",
        "validation_error",
    ),
    "min_subscores 5": (
        {"definition": {"min_subscores": 5}},
        "definition.min_subscores",
        "validation_error",
    ),
    "device alert drop of 0 points": (
        {"definition": {"alert_min_score_drop": 0}},
        "definition.alert_min_score_drop",
        "validation_error",
    ),
    "unknown definition key": (
        {"definition": {"colour": "blue"}},
        "definition.colour",
        "validation_error",
    ),
    "unclosed glob": (
        {"rules": [{"os": "linux"}, {"hostname": "ws-[0-9"}]},
        "rules[1].hostname",
        "validation_error",
    ),
    "glob with a space": (
        {"rules": [{"hostname": "ws 1*"}]},
        "rules[0].hostname",
        "validation_error",
    ),
    "empty rule": ({"rules": [{}]}, "rules[0]", "validation_error"),
    "unknown rule key": ({"rules": [{"site": "paris"}]}, "rules[0].site", "validation_error"),
    "unknown os": ({"rules": [{"os": "beos"}]}, "rules[0].os", "validation_error"),
    "unknown base": ({"base": "astronaut"}, "base", "unknown_base"),
    "built-in with another base": (
        {"name": "executive", "base": "developer"},
        "base",
        "unknown_base",
    ),
    "bad name": ({"name": "Dev Team"}, "name", "validation_error"),
    "negative priority": ({"priority": -1}, "priority", "validation_error"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_422_naming_the_field(collector: CollectorProcess, case: str) -> None:
    t = _shared(collector)
    change, field, code = BAD_INPUTS[case]
    body = {**_valid(), **change}
    error = _error(_post(collector, t.api_key, body), 422, code)
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    stored = _personas(collector, t.api_key).get(body["name"])
    assert stored is None or stored["customised"] is False  # nothing was stored


def test_malformed_json_is_422(collector: CollectorProcess) -> None:
    t = _shared(collector)
    _error(_post(collector, t.api_key, b"{not json"), 422, "malformed_json")


def test_roles_and_msp_keys(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    other = create_tenant(collector.database_url)
    device = _enroll(collector, t)
    for role in ("viewer", "analyst"):
        key = _api_key(collector, role, t.tenant_id)
        _error(_post(collector, key, _valid()), 403, "admin_required")
        assert [p["name"] for p in _get(collector, key, "/personas")["items"]] == BUILTIN_NAMES
    viewer = _api_key(collector, "viewer", t.tenant_id)
    _error(_put_persona(collector, viewer, device, {"persona": "developer"}), 403, "role_required")
    analyst = _api_key(collector, "analyst", t.tenant_id)
    put = _put_persona(collector, analyst, device, {"persona": "developer"})
    assert put.status_code == 200, put.text

    error = _error(
        _post(collector, t.api_key, {**_valid(), "tenant_id": other.tenant_id}),
        403,
        "other_tenant",
    )
    assert error["field"] == "tenant_id"

    msp = _api_key(collector, "admin", None)
    assert _error(_post(collector, msp, _valid()), 422, "validation_error")["field"] == (
        "tenant_id"
    )
    missing = {**_valid(), "tenant_id": str(uuid.uuid4())}
    assert _error(_post(collector, msp, missing), 422, "unknown_tenant")["field"] == "tenant_id"
    body = {**_valid(), "tenant_id": other.tenant_id}
    made = _post(collector, msp, body)
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == other.tenant_id
    assert body["name"] in _personas(collector, other.api_key)
    stored = _personas(collector, t.api_key).get(body["name"])
    assert stored is None or stored["customised"] is False  # nothing was stored
    assert body["name"] in {
        p["name"] for p in _get(collector, msp, f"/personas?tenant={other.tenant_id}")["items"]
    }

    _error(httpx.get(f"{collector.url}/api/v1/personas", timeout=30), 401, "missing_token")


def test_tenant_isolation(collector: CollectorProcess) -> None:
    a = create_tenant(collector.database_url)
    b = create_tenant(collector.database_url)
    secret = {"name": "a-secret", "rules": [{"hostname": "*"}], "priority": 1}
    assert _post(collector, a.api_key, secret).status_code == 201
    a_device = _enroll(collector, a, hostname="a-ws-1")
    assert _assigned(collector, a, a_device) == ("a-secret", "rule")

    assert "a-secret" not in _personas(collector, b.api_key)
    forced = _get(collector, b.api_key, f"/personas?tenant={a.tenant_id}")["items"]
    assert "a-secret" not in {p["name"] for p in forced}
    response = httpx.get(
        f"{collector.url}/api/v1/personas/a-secret", headers=_auth(b.api_key), timeout=30
    )
    _error(response, 404, "not_found")
    # B's rule matching every host does not touch A's devices
    assert (
        _post(collector, b.api_key, {"name": "b-all", "rules": [{"hostname": "*"}]}).status_code
        == 201
    )
    assert _assigned(collector, a, a_device) == ("a-secret", "rule")
    # B cannot override A's device, nor use A's persona on its own
    _error(_put_persona(collector, b.api_key, a_device, {"persona": "developer"}), 404, "not_found")
    b_device = _enroll(collector, b)
    error = _error(
        _put_persona(collector, b.api_key, b_device, {"persona": "a-secret"}),
        422,
        "unknown_persona",
    )
    assert error["field"] == "persona"
    # device counts are per tenant
    assert _personas(collector, a.api_key)["a-secret"]["devices"] == 1
    assert _personas(collector, b.api_key)["b-all"]["devices"] == 1
    # a's persona of the same name as b's is a's own
    same = {"name": "b-all", "definition": {"min_samples": 3}}
    assert _post(collector, a.api_key, same).status_code == 201
    assert _personas(collector, a.api_key)["b-all"]["effective"]["min_samples"] == 3
    assert _personas(collector, b.api_key)["b-all"]["effective"]["min_samples"] == 1


def test_assignment_at_enrollment_and_on_change(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    rules: list[dict[str, Any]] = [
        {"name": "builders", "rules": [{"hostname": "BUILD-*"}], "priority": 10},
        {"name": "paris-office", "rules": [{"tags": {"site": "paris", "floor": "2"}}]},
        {"name": "road", "base": "field_worker", "rules": [{"device_group": "sales"}]},
        {
            "name": "workstations",
            "base": "developer",
            "rules": [{"hardware_class": "high", "os": "linux"}],
            "priority": 200,
        },
    ]
    for body in rules:
        assert _post(collector, t.api_key, body).status_code == 201
    by_host = _enroll(collector, t, hostname="build-07", tags={"group": "sales"})
    by_tag = _enroll(collector, t, tags={"site": "paris", "floor": "2", "desk": "9"})
    by_group = _enroll(collector, t, tags={"group": "sales"})
    by_class = _enroll(collector, t, hardware={"hardware_class": "high", "cpu_count": 16})
    by_hint = _enroll(collector, t, persona_hint="executive", tags={"site": "paris"})
    unknown_hint = _enroll(collector, t, persona_hint="astronaut")
    plain = _enroll(collector, t, hardware={"hardware_class": "high"}, os_name="windows")
    assert _assigned(collector, t, by_host) == ("builders", "rule")  # priority 10 wins
    assert _assigned(collector, t, by_tag) == ("paris-office", "rule")
    assert _assigned(collector, t, by_group) == ("road", "rule")
    assert _assigned(collector, t, by_class) == ("workstations", "rule")
    assert _assigned(collector, t, by_hint) == ("executive", "hint")
    assert _assigned(collector, t, unknown_hint) == ("knowledge_worker", "default")
    assert _assigned(collector, t, plain) == ("knowledge_worker", "default")

    # a new rule reassigns existing devices; a custom hint becomes known when created
    assert (
        _post(collector, t.api_key, {"name": "executive", "rules": [{"os": "windows"}]}).status_code
        == 201
    )
    assert _assigned(collector, t, plain) == ("executive", "rule")
    assert _post(collector, t.api_key, {"name": "astronaut"}).status_code == 201
    assert _assigned(collector, t, unknown_hint) == ("astronaut", "hint")
    # changing a rule moves devices off it again
    moved = _post(collector, t.api_key, {"name": "builders", "rules": [{"hostname": "ci-*"}]})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert _assigned(collector, t, by_host) == ("road", "rule")

    counts = {name: p["devices"] for name, p in _personas(collector, t.api_key).items()}
    assert counts["road"] == 2 and counts["builders"] == 0 and counts["executive"] == 2
    assert sum(counts.values()) == 7

    # the inventory shows the assigned persona and why
    page = _get(collector, t.api_key, "/devices")
    listed = {d["id"]: (d["persona"], d["persona_source"]) for d in page["items"]}
    assert listed[by_tag] == ("paris-office", "rule")
    assert listed[by_hint] == ("executive", "hint")


def test_manual_override_wins_and_can_be_cleared(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    assert (
        _post(collector, t.api_key, {"name": "desk", "rules": [{"hostname": "ws-*"}]}).status_code
        == 201
    )
    device = _enroll(collector, t, hostname="ws-override", persona_hint="developer")
    assert _assigned(collector, t, device) == ("desk", "rule")

    put = _put_persona(collector, t.api_key, device, {"persona": "contact_centre_agent"})
    assert put.status_code == 200, put.text
    assert put.json() == {
        "device_id": device,
        "persona": "contact_centre_agent",
        "persona_source": "override",
        "persona_override": "contact_centre_agent",
    }
    assert _assigned(collector, t, device) == ("contact_centre_agent", "override")
    # rules changing later do not move an overridden device
    assert (
        _post(collector, t.api_key, {"name": "desk", "rules": [{"os": "linux"}]}).status_code == 200
    )
    assert _assigned(collector, t, device) == ("contact_centre_agent", "override")

    for body, field, code in (
        ({"persona": "nobody"}, "persona", "unknown_persona"),
        ({"persona": 3}, "persona", "validation_error"),
        ({}, "persona", "validation_error"),
    ):
        assert _error(_put_persona(collector, t.api_key, device, body), 422, code)["field"] == field
    _error(
        _put_persona(collector, t.api_key, str(uuid.uuid4()), {"persona": None}), 404, "not_found"
    )

    cleared = _put_persona(collector, t.api_key, device, {"persona": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["persona_override"] is None
    assert _assigned(collector, t, device) == ("desk", "rule")


def test_0004_assigns_existing_devices_their_hint_or_the_default(database_url: str) -> None:
    engine = make_engine(normalise_database_url(database_url))
    try:
        upgrade(engine, "0003")
        tenant_id = uuid.uuid4().hex
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, name, created_at, pseudonym_key) "
                    "VALUES (:id, 'acme', CURRENT_TIMESTAMP, :key)"
                ),
                {"id": tenant_id, "key": "0" * 64},
            )
            for hint in ("developer", "astronaut", None):
                conn.execute(
                    sa.text(
                        "INSERT INTO devices (id, tenant_id, hostname, os, os_version, hardware,"
                        " agent_version, persona_hint, tags, enrolled_at) VALUES (:id, :t, 'h',"
                        " 'linux', '6', '{}', '0.1', :hint, '{}', CURRENT_TIMESTAMP)"
                    ),
                    {"id": uuid.uuid4().hex, "t": tenant_id, "hint": hint},
                )
        upgrade(engine, "0004")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT persona_hint, persona, persona_source FROM devices")
            ).all()
        assert {tuple(row) for row in rows} == {
            ("astronaut", "knowledge_worker", "default"),
            ("developer", "developer", "hint"),
            (None, "knowledge_worker", "default"),
        }
    finally:
        engine.dispose()
