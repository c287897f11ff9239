"""Survey campaigns over real HTTP against a real collector, on SQLite and PostgreSQL.

Creation and its precise 422s, roles and tenant isolation, the campaigns served in the
agent configuration (checked with the agent's own parser), and results computed from
``survey_response`` events ingested through the public API.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from agent.surveys import model as agent_model
from collector.surveys import schemas
from tests.support import (
    CollectorProcess,
    Device,
    Tenant,
    create_tenant,
    make_batch,
    now_utc,
    run_cli,
)


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    """One collector per backend."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with CollectorProcess(module_database_url, log) as proc:
        yield proc


@pytest.fixture(scope="module")
def tenant(collector: CollectorProcess) -> Tenant:
    """Tenant A, with an admin key bound to it."""
    return create_tenant(collector.database_url)


@pytest.fixture(scope="module")
def other(collector: CollectorProcess) -> Tenant:
    """Tenant B, with an admin key bound to it."""
    return create_tenant(collector.database_url)


def _api_key(collector: CollectorProcess, role: str, tenant_id: str | None) -> str:
    args = ["admin", "create-api-key", "--role", role, "--database-url", collector.database_url]
    if tenant_id is not None:
        args += ["--tenant", tenant_id]
    key: str = json.loads(run_cli(*args, "--json").stdout)["api_key"]
    return key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _campaign(**fields: Any) -> dict[str, Any]:
    """A valid, running campaign in the agent's shape (plus ``targeting``)."""
    now = now_utc()
    return {
        "id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "Weekly pulse",
        "question": {
            "type": "stars",
            "text": "How well could you work today?",
            "follow_up": "What got in your way?",
        },
        "trigger": {"kind": "pulse", "sample_rate": 0.05, "period_days": 7},
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        "anonymous": False,
        "expires_after_s": 28800,
        **fields,
    }


def _post(collector: CollectorProcess, key: str, body: dict[str, Any] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{collector.url}/api/v1/campaigns",
        content=content,
        headers={"Content-Type": "application/json", **_auth(key)},
        timeout=30,
    )


def _get(collector: CollectorProcess, key: str, path: str) -> httpx.Response:
    return httpx.get(f"{collector.url}/api/v1{path}", headers=_auth(key), timeout=30)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def _enroll(
    collector: CollectorProcess,
    tenant: Tenant,
    persona: str | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[Device, dict[str, Any]]:
    """Enroll through the public API with a persona hint and tags; returns the config too."""
    body: dict[str, Any] = {
        "enrollment_token": tenant.enrollment_token,
        "hostname": f"ws-{uuid.uuid4().hex[:6]}",
        "os": "linux",
        "os_version": "6.1",
        "hardware": {"cpu_count": 4},
        "agent_version": "0.1.0",
        "persona_hint": persona,
        "tags": tags or {},
    }
    response = httpx.post(f"{collector.url}/api/v1/enroll", json=body, timeout=30)
    assert response.status_code == 201, response.text
    made = response.json()
    return Device(made["device_id"], made["device_token"]), made["config"]


def _agent_config(collector: CollectorProcess, device: Device) -> dict[str, Any]:
    response = httpx.get(f"{collector.url}/api/v1/agent/config", headers=device.headers)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def test_collector_constants_match_the_agent() -> None:
    assert dict(schemas.SCALES) == dict(agent_model.SCALES)
    assert schemas.EVENT_TRIGGER_TYPES == agent_model.EVENT_TRIGGER_TYPES
    assert schemas.OUTCOMES == agent_model.OUTCOMES


def test_create_list_get(collector: CollectorProcess, tenant: Tenant) -> None:
    body = _campaign(
        trigger={"kind": "event", "event_types": ["app_crash"], "delay_s": 300, "every_n": 2},
        targeting={"personas": ["developer"], "tags": {"site": "paris"}},
    )
    created = _post(collector, tenant.api_key, body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["id"] == body["id"]
    assert out["tenant_id"] == tenant.tenant_id
    assert out["question"] == body["question"]
    assert out["trigger"] == {
        "kind": "event",
        "event_types": ["app_crash"],
        "delay_s": 300,
        "every_n": 2,
        "sample_rate": 1.0,
    }
    assert out["targeting"] == {"personas": ["developer"], "tags": {"site": "paris"}}
    assert datetime.fromisoformat(out["starts_at"]) == datetime.fromisoformat(body["starts_at"])
    assert out["created_by"].startswith("api_key:")

    listed = _get(collector, tenant.api_key, "/campaigns")
    assert listed.status_code == 200
    assert out in listed.json()["items"]
    assert _get(collector, tenant.api_key, f"/campaigns/{body['id']}").json() == out

    # the id is generated when omitted; a taken id is a conflict
    generated = _post(collector, tenant.api_key, {k: v for k, v in body.items() if k != "id"})
    assert generated.status_code == 201, generated.text
    assert uuid.UUID(generated.json()["id"])
    assert _error(_post(collector, tenant.api_key, body), 409, "campaign_exists")["field"] == "id"


def _without(key: str) -> Any:
    return lambda body: {k: v for k, v in body.items() if k != key}


BAD_INPUTS = {
    "question type": (
        lambda b: {**b, "question": {"type": "slider", "text": "How?"}},
        "question.type",
    ),
    "empty question text": (
        lambda b: {**b, "question": {"type": "nps", "text": "  "}},
        "question.text",
    ),
    "sample rate 1.5": (
        lambda b: {**b, "trigger": {"kind": "pulse", "sample_rate": 1.5}},
        "trigger.sample_rate",
    ),
    "sample rate as a string": (
        lambda b: {**b, "trigger": {"kind": "control", "sample_rate": "0.5"}},
        "trigger.sample_rate",
    ),
    "event trigger without event_types": (
        lambda b: {**b, "trigger": {"kind": "event", "delay_s": 60}},
        "trigger.event_types",
    ),
    "unknown event type": (
        lambda b: {**b, "trigger": {"kind": "event", "event_types": ["boot", "reboot"]}},
        "trigger.event_types[1]",
    ),
    "every_n 0": (
        lambda b: {**b, "trigger": {"kind": "event", "event_types": ["boot"], "every_n": 0}},
        "trigger.every_n",
    ),
    "pulse with event field": (
        lambda b: {**b, "trigger": {"kind": "pulse", "delay_s": 60}},
        "trigger.delay_s",
    ),
    "unknown trigger kind": (lambda b: {**b, "trigger": {"kind": "weekly"}}, "trigger.kind"),
    "ends before starts": (
        lambda b: {**b, "ends_at": "2020-01-01T00:00:00Z"},
        "ends_at",
    ),
    "naive starts_at": (lambda b: {**b, "starts_at": "2026-11-01T00:00:00"}, "starts_at"),
    "missing starts_at": (_without("starts_at"), "starts_at"),
    "unknown key": (lambda b: {**b, "colour": "blue"}, "colour"),
    "unknown targeting key": (
        lambda b: {**b, "targeting": {"groups": ["a"]}},
        "targeting.groups",
    ),
    "expires_after_s too short": (lambda b: {**b, "expires_after_s": 10}, "expires_after_s"),
    "id with a slash": (lambda b: {**b, "id": "a/b"}, "id"),
    "anonymous as 1": (lambda b: {**b, "anonymous": 1}, "anonymous"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_422_naming_the_field(
    collector: CollectorProcess, tenant: Tenant, case: str
) -> None:
    change, field = BAD_INPUTS[case]
    error = _error(_post(collector, tenant.api_key, change(_campaign())), 422, "validation_error")
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


def test_malformed_json_is_422(collector: CollectorProcess, tenant: Tenant) -> None:
    _error(_post(collector, tenant.api_key, b"{not json"), 422, "malformed_json")


def test_roles_and_msp_keys(collector: CollectorProcess, tenant: Tenant, other: Tenant) -> None:
    viewer = _api_key(collector, "viewer", tenant.tenant_id)
    _error(_post(collector, viewer, _campaign()), 403, "role_required")
    assert _get(collector, viewer, "/campaigns").status_code == 200  # viewers may read

    analyst = _api_key(collector, "analyst", tenant.tenant_id)
    assert _post(collector, analyst, _campaign()).status_code == 201

    # a tenant-bound key may repeat its own tenant, not name another
    assert (
        _post(collector, tenant.api_key, _campaign(tenant_id=tenant.tenant_id)).status_code == 201
    )
    error = _error(
        _post(collector, tenant.api_key, _campaign(tenant_id=other.tenant_id)), 403, "other_tenant"
    )
    assert error["field"] == "tenant_id"

    msp = _api_key(collector, "admin", None)
    assert _error(_post(collector, msp, _campaign()), 422, "validation_error")["field"] == (
        "tenant_id"
    )
    missing = _campaign(tenant_id=str(uuid.uuid4()))
    assert _error(_post(collector, msp, missing), 422, "unknown_tenant")["field"] == "tenant_id"
    made = _post(collector, msp, _campaign(tenant_id=other.tenant_id))
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == other.tenant_id
    assert made.json() in _get(collector, other.api_key, "/campaigns").json()["items"]

    _error(httpx.get(f"{collector.url}/api/v1/campaigns"), 401, "missing_token")


def test_tenant_isolation(collector: CollectorProcess) -> None:
    a = create_tenant(collector.database_url)
    b = create_tenant(collector.database_url)
    body = _campaign()
    assert _post(collector, a.api_key, body).status_code == 201
    assert _get(collector, b.api_key, "/campaigns").json() == {"items": []}
    _error(_get(collector, b.api_key, f"/campaigns/{body['id']}"), 404, "not_found")
    _error(_get(collector, b.api_key, f"/campaigns/{body['id']}/results"), 404, "not_found")
    # asking for the other tenant explicitly changes nothing for a tenant-bound key
    forced = _get(collector, b.api_key, f"/campaigns?tenant={a.tenant_id}")
    assert forced.json() == {"items": []}

    # ids are per tenant: B may use the same one; an MSP key must then say which tenant
    assert _post(collector, b.api_key, {**body, "name": "B's"}).status_code == 201
    assert _get(collector, b.api_key, f"/campaigns/{body['id']}").json()["name"] == "B's"
    assert _get(collector, a.api_key, f"/campaigns/{body['id']}").json()["name"] == body["name"]
    msp = _api_key(collector, "admin", None)
    _error(_get(collector, msp, f"/campaigns/{body['id']}"), 409, "ambiguous_campaign")
    picked = _get(collector, msp, f"/campaigns/{body['id']}?tenant={b.tenant_id}")
    assert picked.json()["name"] == "B's"


def test_agent_config_carries_the_campaigns_that_target_the_device(
    collector: CollectorProcess,
) -> None:
    t = create_tenant(collector.database_url)
    now = now_utc()
    everyone = _campaign(name="everyone")
    developers = _campaign(name="developers", targeting={"personas": ["developer", "ops"]})
    paris = _campaign(
        name="paris",
        question={"type": "nps", "text": "Would you recommend IT?"},
        trigger={
            "kind": "event",
            "event_types": ["app_crash", "app_hang"],
            "delay_s": 120,
            "every_n": 3,
            "min_duration_s": 30,
        },
        targeting={"tags": {"site": "paris"}},
        anonymous=True,
    )
    paris_devs = _campaign(
        name="paris devs", targeting={"personas": ["developer"], "tags": {"site": "paris"}}
    )
    sales = _campaign(name="sales", targeting={"personas": ["sales"]})
    berlin = _campaign(name="berlin", targeting={"tags": {"site": "berlin"}})
    future = _campaign(
        name="future",
        starts_at=(now + timedelta(days=1)).isoformat(),
        ends_at=(now + timedelta(days=2)).isoformat(),
    )
    ended = _campaign(
        name="ended",
        starts_at=(now - timedelta(days=10)).isoformat(),
        ends_at=(now - timedelta(days=1)).isoformat(),
    )
    open_ended = _campaign(name="open-ended", question={"type": "yes_no", "text": "OK?"})
    del open_ended["ends_at"]
    for campaign in (everyone, developers, paris, paris_devs, sales, berlin, future, ended):
        assert _post(collector, t.api_key, campaign).status_code == 201
    assert _post(collector, t.api_key, open_ended).status_code == 201
    other_tenant = create_tenant(collector.database_url)
    assert _post(collector, other_tenant.api_key, _campaign(name="elsewhere")).status_code == 201

    dev, enrolled_config = _enroll(
        collector, t, persona="developer", tags={"site": "paris", "floor": "3"}
    )
    config = _agent_config(collector, dev)
    names = {c["name"] for c in config["campaigns"]}
    assert names == {"everyone", "developers", "paris", "paris devs", "open-ended"}
    assert enrolled_config["campaigns"] == config["campaigns"]
    for served in config["campaigns"]:
        parsed = agent_model.parse_campaign(served)
        assert parsed.id == served["id"]
        assert "targeting" not in served
    by_name = {c["name"]: agent_model.parse_campaign(c) for c in config["campaigns"]}
    assert by_name["paris"].trigger == agent_model.Trigger(
        kind="event",
        event_types=frozenset({"app_crash", "app_hang"}),
        delay_s=120.0,
        every_n=3,
        min_duration_s=30.0,
    )
    assert by_name["paris"].anonymous is True
    assert by_name["paris"].question.type == "nps"
    assert by_name["everyone"].question.follow_up == "What got in your way?"
    assert by_name["open-ended"].ends_at is None
    assert config["surveys"] == {
        "min_days_between_prompts": 7,
        "quiet_hours": ["18:00", "09:00"],
        "working_days": [0, 1, 2, 3, 4],
        "snooze_s": 86400,
        "last_prompt_at": None,
    }

    # campaigns target the device's assigned persona: "sales" becomes one of the tenant's
    # personas, and a device whose installer hints it is assigned to it
    made = httpx.post(
        f"{collector.url}/api/v1/personas",
        json={"name": "sales", "description": "Sales team", "base": "field_worker"},
        headers=_auth(t.api_key),
        timeout=30,
    )
    assert made.status_code in (200, 201), made.text
    salesperson, _ = _enroll(collector, t, persona="sales", tags={"site": "berlin"})
    names = {c["name"] for c in _agent_config(collector, salesperson)["campaigns"]}
    assert names == {"everyone", "sales", "berlin", "open-ended"}
    no_persona, _ = _enroll(collector, t)
    names = {c["name"] for c in _agent_config(collector, no_persona)["campaigns"]}
    assert names == {"everyone", "open-ended"}


def _answer(
    campaign_id: str,
    outcome: str,
    ts: datetime,
    value: float | None = None,
    trigger: str | None = None,
    prompt_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "type": "survey_response",
        "campaign_id": campaign_id,
        "prompt_id": prompt_id or str(uuid.uuid4()),
        "outcome": outcome,
        "question_type": "stars",
    }
    if value is not None:
        event["value"] = value
    if trigger is not None:
        event["trigger"] = trigger
    return event


def test_results_and_last_prompt_at(collector: CollectorProcess) -> None:
    t = create_tenant(collector.database_url)
    campaign = _campaign(
        trigger={"kind": "event", "event_types": ["app_crash"]},
        question={"type": "stars", "text": "How did that go?"},
        min_responses=1,  # the small groups below are checked figure by figure
    )
    assert _post(collector, t.api_key, campaign).status_code == 201
    cid = campaign["id"]
    empty = _get(collector, t.api_key, f"/campaigns/{cid}/results").json()
    assert empty["prompts"] == 0 and empty["response_rate"] is None
    assert empty["score"] == {
        "n": 0,
        "mean": None,
        "stdev": None,
        "ci95": None,
        "note": "not enough data",
    }

    device, _ = _enroll(collector, t)
    base: datetime = now_utc() - timedelta(hours=2)

    def at(minutes: int) -> datetime:
        return base + timedelta(minutes=minutes)

    snoozed_then_answered = str(uuid.uuid4())
    events = [
        # event-triggered: stars 5, 4, 2, 1, 3 -> 100, 75, 25, 0, 50 (one without `trigger`:
        # it counts under the campaign's own kind, event)
        _answer(cid, "answered", at(1), 5, "event"),
        _answer(cid, "answered", at(2), 4, "event"),
        _answer(cid, "answered", at(3), 2, "event"),
        _answer(cid, "answered", at(4), 1, "event"),
        _answer(cid, "answered", at(5), 3),
        _answer(cid, "dismissed", at(6), trigger="event"),
        # control: 4, 4 -> 75, 75 and one snoozed
        _answer(cid, "answered", at(7), 4, "control"),
        _answer(cid, "answered", at(8), 4, "control"),
        _answer(cid, "snoozed", at(9), trigger="control"),
        # pulse: 5 -> 100, a prompt snoozed then answered 3 -> 50 (one prompt), one opt-out
        _answer(cid, "answered", at(10), 5, "pulse"),
        _answer(cid, "snoozed", at(11), trigger="pulse", prompt_id=snoozed_then_answered),
        _answer(cid, "answered", at(12), 3, "pulse", prompt_id=snoozed_then_answered),
        _answer(cid, "opted_out", at(13), trigger="pulse"),
        # never seen by the user: counts as a prompt, not for the fatigue gap (newest events)
        _answer(cid, "expired", at(20), trigger="event"),
        _answer(cid, "expired", at(21), trigger="event"),
        # another campaign's answers are not this campaign's results (but its prompts do
        # count for the device's fatigue gap)
        _answer("some-other-campaign", "answered", at(0), 1, "event"),
    ]
    response = httpx.post(
        f"{collector.url}/api/v1/ingest",
        json=make_batch(device.device_id, events),
        headers=device.headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)

    results = _get(collector, t.api_key, f"/campaigns/{cid}/results").json()
    assert results["campaign_id"] == cid
    assert results["question_type"] == "stars"
    assert results["scale"] == [1, 5]
    assert results["prompts"] == 14
    assert results["counts"] == {
        "answered": 9,
        "dismissed": 1,
        "snoozed": 1,
        "expired": 2,
        "opted_out": 1,
    }
    assert results["response_rate"] == pytest.approx(9 / 14)
    overall = [100, 75, 25, 0, 50, 75, 75, 100, 50]
    mean = sum(overall) / 9  # 550 / 9
    stdev = math.sqrt(sum((x - mean) ** 2 for x in overall) / 8)
    half = 1.96 * stdev / math.sqrt(9)
    assert results["score"]["n"] == 9
    assert results["score"]["mean"] == pytest.approx(550 / 9)
    assert results["score"]["stdev"] == pytest.approx(stdev)
    assert results["score"]["ci95"]["low"] == pytest.approx(mean - half)
    assert results["score"]["ci95"]["high"] == pytest.approx(mean + half)
    assert results["score"]["note"] is None

    event = results["by_trigger"]["event"]
    assert event["prompts"] == 8
    assert event["counts"] == {
        "answered": 5,
        "dismissed": 1,
        "snoozed": 0,
        "expired": 2,
        "opted_out": 0,
    }
    assert event["response_rate"] == pytest.approx(5 / 8)
    # 100, 75, 25, 0, 50: mean 50; squared deviations 2500+625+625+2500+0 = 6250;
    # variance 6250 / 4 = 1562.5; CI half-width 1.96 * sqrt(1562.5 / 5) = 1.96 * sqrt(312.5)
    assert event["score"]["n"] == 5
    assert event["score"]["mean"] == pytest.approx(50.0)
    assert event["score"]["stdev"] == pytest.approx(math.sqrt(1562.5))
    assert event["score"]["ci95"]["low"] == pytest.approx(50 - 1.96 * math.sqrt(312.5))
    assert event["score"]["ci95"]["high"] == pytest.approx(50 + 1.96 * math.sqrt(312.5))

    control = results["by_trigger"]["control"]
    assert control["prompts"] == 3
    assert control["counts"]["answered"] == 2 and control["counts"]["snoozed"] == 1
    assert control["response_rate"] == pytest.approx(2 / 3)
    assert control["score"] == {
        "n": 2,
        "mean": pytest.approx(75.0),
        "stdev": pytest.approx(0.0),
        "ci95": None,
        "note": "not enough data",
    }

    pulse = results["by_trigger"]["pulse"]
    assert pulse["prompts"] == 3
    assert pulse["counts"] == {
        "answered": 2,
        "dismissed": 0,
        "snoozed": 0,
        "expired": 0,
        "opted_out": 1,
    }
    assert pulse["score"]["mean"] == pytest.approx(75.0)
    assert pulse["score"]["ci95"] is None

    # the newest prompt the user saw is the opt-out at minute 13 (the expired ones were
    # never shown); a re-installed agent learns it from the configuration
    served = _agent_config(collector, device)["surveys"]["last_prompt_at"]
    assert datetime.fromisoformat(served) == at(13)
    fresh, _ = _enroll(collector, t)
    assert _agent_config(collector, fresh)["surveys"]["last_prompt_at"] is None
