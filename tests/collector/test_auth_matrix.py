"""Authorisation matrix: every route of the app against every kind of caller.

A real collector process (fresh SQLite database) serves tenant A, seeded with one object of
every kind a route names, and tenant B. Each route of ``create_app(...).routes`` (read from
an app that is never started) has one request aimed at tenant A's objects in
:data:`REQUESTS`, and one row of expected statuses in :data:`EXPECTED`, one per caller:

- ``anonymous``: no credentials;
- ``device``: the token of A's device the request names;
- ``other_device``: the token of another device of A (not the one the request names);
- ``other_viewer``: a viewer of tenant B;
- ``analyst`` and ``admin``: of tenant A.

People call the API with their API key and the dashboard with a signed-in session (and its
CSRF token on forms); devices and anonymous callers send what they have. A route of the app
missing from either table fails its case. Tenant isolation in depth (no leak of B's data in
any answer) is tests/collector/test_isolation.py's job; this file checks who gets in.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session

import collector.models  # noqa: F401  (every table, for the foreign keys)
from collector.alerts.models import Alert
from collector.app import create_app
from collector.auth import SESSION_COOKIE
from collector.dashboard.router import LOGIN_CSRF_COOKIE
from collector.db import make_engine, make_sessionmaker
from collector.identity.roles import Role
from collector.identity.service import create_api_key, create_user
from collector.settings import Settings, normalise_database_url
from collector.tenants.service import create_tenant
from tests.support import (
    CollectorProcess,
    dashboard_login,
    enroll,
    expect,
    make_batch,
    now_utc,
    resource_event,
    run_cli,
)

PASSWORD = "correct horse battery staple"
NOW = now_utc().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
PERIOD = NOW.strftime("%Y-%m")
CALLERS = ("anonymous", "device", "other_device", "other_viewer", "analyst", "admin")


def app_routes() -> list[tuple[str, str]]:
    """Every ``(method, path)`` the collector app serves, from an app never started."""
    app = create_app(Settings(database_url="sqlite://"))
    pairs: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None, f"a route without a path: {route!r}"
        for method in sorted(route.methods or {"*"}):
            pairs.add((method, route.path))
    return sorted(pairs, key=lambda p: (p[1], p[0]))


APP_ROUTES = app_routes()


# --- the seeded world ---------------------------------------------------------------------


@dataclass
class World:
    url: str
    client: httpx.Client
    objects: dict[str, str]
    keys: dict[str, str]
    """Bearer credential of each caller (device token or API key); none for anonymous."""
    sessions: dict[str, str]
    """Dashboard session cookie of each person."""
    emails: dict[str, str]
    csrf: dict[str, str] = field(default_factory=dict)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['admin']}"}


def _u() -> str:
    return uuid.uuid4().hex[:8]


def _persona_body(w: World) -> dict[str, Any]:
    return {"name": f"persona-{_u()}", "tenant_id": w.objects["tenant"]}


def _campaign_body(w: World) -> dict[str, Any]:
    return {
        "id": f"campaign-{_u()}",
        "name": "pulse",
        "question": {"type": "stars", "text": "How well could you work today?"},
        "trigger": {"kind": "pulse", "sample_rate": 0.05, "period_days": 7},
        "starts_at": (NOW - timedelta(days=1)).isoformat(),
        "tenant_id": w.objects["tenant"],
    }


def _webhook_body(w: World) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/hook",
        "kind": "generic",
        "name": f"hook-{_u()}",
        "tenant_id": w.objects["tenant"],
    }


def _xla_body(w: World, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or f"xla-{_u()}",
        "tenant_id": w.objects["tenant"],
        "scope": {"persona": w.objects["persona"]},
        "indicator": "experience_score",
        "target": {"comparison": ">=", "value": 70.0},
        "min_devices": 1,
    }


def _ticket(w: World) -> dict[str, Any]:
    return {
        "external_id": f"ticket-{_u()}",
        "opened_at": (NOW - timedelta(hours=2)).isoformat(),
        "device_hostname": w.objects["hostname"],
        "category": "software",
        "summary": "Outlook freezes",
    }


def _tickets_csv(w: World) -> str:
    t = _ticket(w)
    return (
        "external_id,opened_at,device_hostname,user,category,summary\n"
        f"{t['external_id']},{t['opened_at']},{t['device_hostname']},,software,Outlook freezes\n"
    )


def _new_webhook(w: World) -> str:
    return str(
        expect(w.client.post("/api/v1/webhooks", headers=w.admin(), json=_webhook_body(w)))["id"]
    )


def _new_xla(w: World) -> str:
    saved = expect(w.client.post("/api/v1/xlas", headers=w.admin(), json=_xla_body(w)))
    return str((saved["items"][0] if "items" in saved else saved)["id"])


def _new_alert(w: World) -> str:
    engine = make_engine(normalise_database_url(w.objects["database_url"]))
    try:
        with Session(engine) as session:
            alert = Alert(
                tenant_id=uuid.UUID(w.objects["tenant"]),
                fingerprint=f"change_point:device:{w.objects['device']}:score:{_u()}",
                kind="change_point",
                scope="device",
                scope_key=w.objects["device"],
                metric="score",
                title="experience score -25 points below its baseline",
                severity="high",
                status="open",
                onset=NOW - timedelta(days=1),
                detected_at=NOW - timedelta(hours=5),
                affected_count=1,
                affected_device_ids=[w.objects["device"]],
                baseline=80.0,
                current=55.0,
                effect_size=2.5,
                evidence={"test": "auth matrix", "series": []},
            )
            session.add(alert)
            session.commit()
            return str(alert.id)
    finally:
        engine.dispose()


def _seed(collector: CollectorProcess, client: httpx.Client) -> World:
    engine = make_engine(normalise_database_url(collector.database_url))
    try:
        with make_sessionmaker(engine)() as session:
            a = create_tenant(session, f"auth-a-{_u()}")
            b = create_tenant(session, f"auth-b-{_u()}")
            keys = {
                "other_viewer": create_api_key(session, Role.VIEWER, b.tenant_id),
                "analyst": create_api_key(session, Role.ANALYST, a.tenant_id),
                "admin": create_api_key(session, Role.ADMIN, a.tenant_id),
            }
            emails = {
                "other_viewer": f"viewer-{_u()}@b.test",
                "analyst": f"analyst-{_u()}@a.test",
                "admin": f"admin-{_u()}@a.test",
            }
            tenants = {"other_viewer": b.tenant_id, "analyst": a.tenant_id, "admin": a.tenant_id}
            roles = {"other_viewer": Role.VIEWER, "analyst": Role.ANALYST, "admin": Role.ADMIN}
            for who, email in emails.items():
                create_user(session, email, PASSWORD, roles[who], tenants[who])
    finally:
        engine.dispose()
    objects = {
        "tenant": str(a.tenant_id),
        "enrollment_token": a.enrollment_token,
        "database_url": collector.database_url,
        "hostname": "auth-host",
        "group": "auth-group",
        "site": "auth-site",
        "app": "auth-app.exe",
        "persona": "auth-persona",
    }
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    expect(
        client.post(
            "/api/v1/personas",
            headers=admin,
            json={
                "name": "auth-persona",
                "base": "knowledge_worker",
                "rules": [{"device_group": "auth-group"}],
                "tenant_id": objects["tenant"],
            },
        )
    )
    tags = {"group": "auth-group", "site": "auth-site"}
    device = enroll(collector.url, a.enrollment_token, "auth-host", tags)
    other = enroll(collector.url, a.enrollment_token, "auth-other-host", tags)
    keys.update(device=device.token, other_device=other.token)
    objects["device"] = device.device_id
    events = [resource_event(NOW - timedelta(hours=h), interval_s=3600) for h in range(1, 6)] + [
        {
            "type": "app_crash",
            "event_id": str(uuid.uuid4()),
            "ts": (NOW - timedelta(hours=2)).isoformat(),
            "app_name": "auth-app.exe",
            "source": "test",
        }
    ]
    expect(
        client.post(
            "/api/v1/ingest", headers=device.headers, json=make_batch(device.device_id, events)
        )
    )
    run_cli(
        "collector", "jobs", "--once", "--as-of", now_utc().isoformat(),
        "--database-url", collector.database_url,
        env={"DEXSCOPE_SCORING_RECEIVE_LAG_S": "0"},
    )  # fmt: skip
    world = World(collector.url, client, objects, keys, {}, emails)
    objects["campaign"] = _campaign_body(world)["id"]
    expect(
        client.post(
            "/api/v1/campaigns",
            headers=admin,
            json={**_campaign_body(world), "id": objects["campaign"]},
        )
    )
    objects["webhook"] = _new_webhook(world)
    objects["xla"] = _new_xla(world)
    objects["alert"] = _new_alert(world)
    for who, email in emails.items():
        world.sessions[who] = dashboard_login(collector.url, email, PASSWORD)
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("auth-matrix")
    database_url = f"sqlite:///{tmp / 'collector.db'}"
    with (
        CollectorProcess(database_url, tmp / "collector.log") as collector,
        httpx.Client(base_url=collector.url, timeout=60) as client,
    ):
        yield _seed(collector, client)


# --- the requests ---------------------------------------------------------------------------

Value = str | Callable[[World], str]


@dataclass(frozen=True)
class Req:
    """The request sent to one route: path parameters and query (object keys of the world,
    ``=literal``, or a callable making a fresh object), body, and its content type."""

    path: dict[str, Value] = field(default_factory=dict)
    query: dict[str, Value] = field(default_factory=dict)
    body: Callable[[World], Any] | None = None
    content_type: str = "application/json"
    form: bool = False
    """A dashboard form: the caller's session CSRF token is posted."""
    fresh_session: bool = False
    """Sign in anew for this request (it ends the session)."""
    login: bool = False
    """The sign-in form: a person posts its own email and password, anyone else a wrong one."""


def _v(w: World, spec: Value) -> str:
    if callable(spec):
        return spec(w)
    return spec[1:] if spec.startswith("=") else w.objects[spec]


def _batch(w: World) -> dict[str, Any]:
    return make_batch(w.objects["device"], [resource_event(NOW)])


def _enroll_body(w: World) -> dict[str, Any]:
    return {
        "enrollment_token": w.objects["enrollment_token"],
        "hostname": f"auth-new-{_u()}",
        "os": "linux",
        "os_version": "6.1",
        "hardware": {},
        "agent_version": "0.1.0",
    }


_TENANT: dict[str, Value] = {"tenant": "tenant"}

REQUESTS: dict[tuple[str, str], Req] = {
    ("GET", "/healthz"): Req(),
    ("GET", "/readyz"): Req(),
    ("GET", "/metrics"): Req(),
    ("GET", "/openapi.json"): Req(),
    ("HEAD", "/openapi.json"): Req(),
    ("GET", "/docs"): Req(),
    ("HEAD", "/docs"): Req(),
    ("GET", "/docs/oauth2-redirect"): Req(),
    ("HEAD", "/docs/oauth2-redirect"): Req(),
    ("GET", "/redoc"): Req(),
    ("HEAD", "/redoc"): Req(),
    ("POST", "/api/v1/enroll"): Req(body=_enroll_body),
    ("POST", "/api/v1/ingest"): Req(body=_batch),
    ("GET", "/api/v1/agent/config"): Req(),
    ("GET", "/api/v1/devices"): Req(query=_TENANT),
    ("GET", "/api/v1/devices/{device_id}"): Req(path={"device_id": "device"}),
    ("GET", "/api/v1/devices/{device_id}/events"): Req(path={"device_id": "device"}),
    ("PUT", "/api/v1/devices/{device_id}/persona"): Req(
        path={"device_id": "device"}, body=lambda w: {"persona": "developer"}
    ),
    ("GET", "/api/v1/personas"): Req(query=_TENANT),
    ("GET", "/api/v1/personas/{name}"): Req(path={"name": "persona"}, query=_TENANT),
    ("POST", "/api/v1/personas"): Req(body=_persona_body),
    ("GET", "/api/v1/campaigns"): Req(query=_TENANT),
    ("GET", "/api/v1/campaigns/{campaign_id}"): Req(
        path={"campaign_id": "campaign"}, query=_TENANT
    ),
    ("GET", "/api/v1/campaigns/{campaign_id}/results"): Req(
        path={"campaign_id": "campaign"}, query=_TENANT
    ),
    ("POST", "/api/v1/campaigns"): Req(body=_campaign_body),
    ("GET", "/api/v1/scores"): Req(query={"level": "=tenant", "tenant": "tenant"}),
    ("GET", "/api/v1/scores/{level}/{key}/explain"): Req(
        path={"level": "=device", "key": "device"}, query=_TENANT
    ),
    ("GET", "/api/v1/alerts"): Req(query={"tenant": "tenant", "status": "=all"}),
    ("GET", "/api/v1/alerts/{alert_id}"): Req(path={"alert_id": "alert"}),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): Req(path={"alert_id": _new_alert}),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): Req(path={"alert_id": _new_alert}),
    ("GET", "/api/v1/tickets"): Req(query=_TENANT),
    ("POST", "/api/v1/tickets"): Req(query={"tenant_id": "tenant"}, body=lambda w: [_ticket(w)]),
    ("POST", "/api/v1/tickets/import"): Req(
        query={"tenant_id": "tenant"}, body=_tickets_csv, content_type="text/csv"
    ),
    ("GET", "/api/v1/webhooks"): Req(query=_TENANT),
    ("POST", "/api/v1/webhooks"): Req(body=_webhook_body),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Req(path={"webhook_id": _new_webhook}),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Req(path={"webhook_id": "webhook"}),
    ("GET", "/api/v1/xlas"): Req(query=_TENANT),
    ("POST", "/api/v1/xlas"): Req(body=_xla_body),
    ("GET", "/api/v1/xlas/{xla_id}"): Req(path={"xla_id": "xla"}, query=_TENANT),
    ("GET", "/api/v1/xlas/{xla_id}/evaluations"): Req(path={"xla_id": "xla"}, query=_TENANT),
    ("GET", "/api/v1/reports/xla"): Req(
        query={"tenant": "tenant", "period": "=" + PERIOD, "format": "=json"}
    ),
    ("GET", "/api/v1/msp/overview"): Req(),
    ("GET", "/login"): Req(),
    ("POST", "/login"): Req(login=True),
    ("POST", "/logout"): Req(form=True, fresh_session=True),
    ("GET", "/"): Req(query=_TENANT),
    ("GET", "/devices"): Req(query=_TENANT),
    ("GET", "/alerts"): Req(query=_TENANT),
    ("GET", "/surveys"): Req(query=_TENANT),
    ("GET", "/devices/{device_id}"): Req(path={"device_id": "device"}),
    ("GET", "/alerts/{alert_id}"): Req(path={"alert_id": "alert"}),
    ("GET", "/personas/{name}"): Req(path={"name": "persona"}),
    ("GET", "/groups/{tag}/{name}"): Req(path={"tag": "=group", "name": "group"}),
    ("GET", "/apps/{name:path}"): Req(path={"name": "app"}),
    ("POST", "/alerts/{alert_id}/{action}"): Req(
        path={"alert_id": _new_alert, "action": "=acknowledge"}, form=True
    ),
    ("GET", "/xlas"): Req(query=_TENANT),
    ("GET", "/msp"): Req(),
}

# Expected status per caller, in the order of CALLERS:
#        anonymous, device, other_device, other_viewer, analyst, admin
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int, int, int]] = {
    # operations and API docs: open to anyone
    ("GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("GET", "/readyz"): (200, 200, 200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200, 200, 200),
    ("GET", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("HEAD", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("GET", "/docs"): (200, 200, 200, 200, 200, 200),
    ("HEAD", "/docs"): (200, 200, 200, 200, 200, 200),
    ("GET", "/docs/oauth2-redirect"): (200, 200, 200, 200, 200, 200),
    ("HEAD", "/docs/oauth2-redirect"): (200, 200, 200, 200, 200, 200),
    ("GET", "/redoc"): (200, 200, 200, 200, 200, 200),
    ("HEAD", "/redoc"): (200, 200, 200, 200, 200, 200),
    # agents: the enrollment token in the body; then the device token, and only for itself
    ("POST", "/api/v1/enroll"): (201, 201, 201, 201, 201, 201),
    ("POST", "/api/v1/ingest"): (401, 200, 403, 401, 401, 401),
    ("GET", "/api/v1/agent/config"): (401, 200, 200, 401, 401, 401),
    # reads: any person of tenant A; B's viewer is held to B (404, or a 200 of B's own rows)
    ("GET", "/api/v1/devices"): (401, 401, 401, 200, 200, 200),
    ("GET", "/api/v1/devices/{device_id}"): (401, 401, 401, 404, 200, 200),
    ("GET", "/api/v1/devices/{device_id}/events"): (401, 401, 401, 404, 200, 200),
    # writes analysts may do too (persona override, campaigns, alerts, tickets)
    ("PUT", "/api/v1/devices/{device_id}/persona"): (401, 401, 401, 403, 200, 200),
    ("GET", "/api/v1/personas"): (401, 401, 401, 200, 200, 200),
    ("GET", "/api/v1/personas/{name}"): (401, 401, 401, 404, 200, 200),
    ("POST", "/api/v1/personas"): (401, 401, 401, 403, 403, 201),
    ("GET", "/api/v1/campaigns"): (401, 401, 401, 200, 200, 200),
    ("GET", "/api/v1/campaigns/{campaign_id}"): (401, 401, 401, 404, 200, 200),
    ("GET", "/api/v1/campaigns/{campaign_id}/results"): (401, 401, 401, 404, 200, 200),
    ("POST", "/api/v1/campaigns"): (401, 401, 401, 403, 201, 201),
    ("GET", "/api/v1/scores"): (401, 401, 401, 200, 200, 200),
    ("GET", "/api/v1/scores/{level}/{key}/explain"): (401, 401, 401, 404, 200, 200),
    ("GET", "/api/v1/alerts"): (401, 401, 401, 200, 200, 200),
    ("GET", "/api/v1/alerts/{alert_id}"): (401, 401, 401, 404, 200, 200),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): (401, 401, 401, 403, 200, 200),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): (401, 401, 401, 403, 200, 200),
    ("GET", "/api/v1/tickets"): (401, 401, 401, 200, 200, 200),
    ("POST", "/api/v1/tickets"): (401, 401, 401, 403, 200, 200),
    ("POST", "/api/v1/tickets/import"): (401, 401, 401, 403, 200, 200),
    # webhooks and persona and XLA definitions: admins only
    ("GET", "/api/v1/webhooks"): (401, 401, 401, 403, 403, 200),
    ("POST", "/api/v1/webhooks"): (401, 401, 401, 403, 403, 201),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): (401, 401, 401, 403, 403, 204),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): (401, 401, 401, 403, 403, 200),
    ("GET", "/api/v1/xlas"): (401, 401, 401, 200, 200, 200),
    ("POST", "/api/v1/xlas"): (401, 401, 401, 403, 403, 200),
    ("GET", "/api/v1/xlas/{xla_id}"): (401, 401, 401, 404, 200, 200),
    ("GET", "/api/v1/xlas/{xla_id}/evaluations"): (401, 401, 401, 404, 200, 200),
    ("GET", "/api/v1/reports/xla"): (401, 401, 401, 404, 200, 200),
    # the MSP overview: MSP-wide staff only (A's admin is bound to A)
    ("GET", "/api/v1/msp/overview"): (401, 401, 401, 403, 403, 403),
    # dashboard: a signed-in session, else a redirect to /login
    ("GET", "/login"): (200, 200, 200, 200, 200, 200),
    ("POST", "/login"): (401, 401, 401, 303, 303, 303),
    ("POST", "/logout"): (303, 303, 303, 303, 303, 303),
    ("GET", "/"): (303, 303, 303, 200, 200, 200),
    ("GET", "/devices"): (303, 303, 303, 200, 200, 200),
    ("GET", "/alerts"): (303, 303, 303, 200, 200, 200),
    ("GET", "/surveys"): (303, 303, 303, 200, 200, 200),
    ("GET", "/devices/{device_id}"): (303, 303, 303, 404, 200, 200),
    ("GET", "/alerts/{alert_id}"): (303, 303, 303, 404, 200, 200),
    ("GET", "/personas/{name}"): (303, 303, 303, 404, 200, 200),
    ("GET", "/groups/{tag}/{name}"): (303, 303, 303, 404, 200, 200),
    ("GET", "/apps/{name:path}"): (303, 303, 303, 404, 200, 200),
    ("POST", "/alerts/{alert_id}/{action}"): (303, 303, 303, 403, 303, 303),
    ("GET", "/xlas"): (303, 303, 303, 200, 200, 200),
    ("GET", "/msp"): (303, 303, 303, 403, 403, 403),
}


def _csrf(w: World, who: str, session: str) -> str:
    page = w.client.get("/alerts", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on /alerts for {who}: {page.text[:300]}"
    return found.group(1)


def send(w: World, caller: str, method: str, path: str, req: Req) -> httpx.Response:
    def one(match: re.Match[str]) -> str:
        return _v(w, req.path[match.group(1)])

    url = re.sub(r"\{(\w+)(?::\w+)?\}", one, path)
    if req.login:
        with httpx.Client(base_url=w.url, timeout=30) as fresh:
            fresh.get("/login").raise_for_status()
            email = w.emails.get(caller, "nobody@auth.test")
            password = PASSWORD if caller in w.emails else "not the password at all"
            form = {"email": email, "password": password, "next": "/"}
            return fresh.post(url, data={**form, "csrf": fresh.cookies[LOGIN_CSRF_COOKIE]})
    params = {k: _v(w, v) for k, v in req.query.items()}
    headers: dict[str, str] = {}
    content: bytes | None = None
    dashboard = not path.startswith("/api/")
    person = caller in w.sessions
    if dashboard and person:
        session = (
            dashboard_login(w.url, w.emails[caller], PASSWORD)
            if req.fresh_session
            else w.sessions[caller]
        )
        headers["Cookie"] = f"{SESSION_COOKIE}={session}"
        if req.form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = f"csrf={_csrf(w, caller, session)}".encode()
    elif caller in w.keys:
        headers["Authorization"] = f"Bearer {w.keys[caller]}"
    if req.body is not None:
        body = req.body(w)
        headers["Content-Type"] = req.content_type
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return w.client.request(method, url, params=params, headers=headers, content=content)


def _cases() -> list[Any]:
    return [
        pytest.param(method, path, caller, id=f"{method} {path} [{caller}]")
        for method, path in APP_ROUTES
        for caller in CALLERS
    ]


def test_route_table_is_read_from_the_app() -> None:
    assert ("POST", "/api/v1/ingest") in APP_ROUTES
    assert len(APP_ROUTES) >= 50


def test_tables_name_no_route_the_app_lacks() -> None:
    assert not set(REQUESTS) - set(APP_ROUTES), set(REQUESTS) - set(APP_ROUTES)
    assert not set(EXPECTED) - set(APP_ROUTES), set(EXPECTED) - set(APP_ROUTES)


@pytest.mark.parametrize(("method", "path", "caller"), _cases())
def test_caller_gets_the_expected_status(
    method: str, path: str, caller: str, request: pytest.FixtureRequest
) -> None:
    if (method, path) not in REQUESTS or (method, path) not in EXPECTED:
        pytest.fail(
            f"{method} {path} is served by the app but missing from REQUESTS/EXPECTED of "
            "tests/collector/test_auth_matrix.py: decide who may call it"
        )
    w: World = request.getfixturevalue("world")
    expected = EXPECTED[(method, path)][CALLERS.index(caller)]
    response = send(w, caller, method, path, REQUESTS[(method, path)])
    assert response.status_code == expected, (
        f"{caller}: {method} {response.request.url}: expected {expected}, "
        f"got {response.status_code}: {response.text[:300]}"
    )
    if response.status_code >= 500:
        pytest.fail(f"{method} {path}: server error for {caller}")
