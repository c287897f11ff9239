"""Tenant isolation over every route of the app, on SQLite and PostgreSQL.

A real collector process serves two tenants, A and B, each seeded through the public API
with one object of every kind a route can name (device with its events and daily scores,
persona, group, site, application, alert, ticket, survey campaign, webhook, XLA when that
route exists). Then, for every ``(method, path)`` of ``create_app(...).routes``, enumerated
at collection time, one case checks what the route's entry in :data:`ROUTES` says:

- ``by_id``: B's object in the path (and ``?tenant=B``) gives A's viewer, and A's admin,
  403 or 404 and none of B's names or ids; an MSP-wide admin gets 200 for the same object,
  so the id really exists.
- ``by_tenant_query``: ``?tenant=B`` (or ``device_id=``/``alert_id=`` of B's objects) gives
  A's callers 403/404, or 200 without any of B's names or ids; the MSP-wide admin's answer
  to the same query holds B's data, so the query really selects it.
- ``write``: a write naming B (in the path, the query or the body) gives A's viewer and A's
  admin 403 or 404 and changes nothing in B; A's viewer writing in its own tenant gets 403.
- ``device_only``: A's viewer API key is refused (401/403); A's device token naming B's
  device is refused or answers without B's data.
- ``msp_only``: A's viewer gets 403; whatever A's admin gets holds nothing of B.
- ``public``: answers without credentials and shows nothing of any tenant.

A route of the app missing from :data:`ROUTES` fails its case: a new route cannot escape
the decision of how tenant isolation applies to it. Entries for routes the app does not
have (yet) are inert.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session

import collector.models  # noqa: F401  (every table, for the foreign keys)
from collector.alerts.models import Alert
from collector.app import create_app
from collector.auth import SESSION_COOKIE
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


class Kind(StrEnum):
    """How tenant isolation applies to a route (see the module doc)."""

    PUBLIC = "public"
    DEVICE_ONLY = "device_only"
    BY_ID = "by_id"
    BY_TENANT_QUERY = "by_tenant_query"
    WRITE = "write"
    MSP_ONLY = "msp_only"


Body = Callable[["Side"], Any]
"""A request body made for one tenant's side (its ids and names)."""


@dataclass(frozen=True)
class Rule:
    """One route's entry: its kind and what to put in the request.

    ``path`` and ``query`` map a parameter to a key of :attr:`Side.objects` (the object of
    the tenant under test) or, prefixed with ``=``, to a literal. Several ``variants`` of
    the path parameters and several ``queries`` are each tried. ``watch`` is an API path
    (``{key}`` filled from the side) that an MSP-wide admin reads before and after a
    write, to show it changed nothing. ``needs`` names seeded objects whose absence (a
    stand-in id) turns off the positive control; ``shows`` asks that control to find B's
    names in the MSP-wide answer, not just a 200.
    """

    kind: Kind
    variants: tuple[Mapping[str, str], ...] = ({},)
    queries: tuple[Mapping[str, str], ...] = ({},)
    body: Body | None = None
    content_type: str = "application/json"
    watch: tuple[str, Mapping[str, str]] | None = None
    needs: tuple[str, ...] = ()
    shows: bool = True
    refuse: bool = False
    """by_tenant_query: A's callers must get 403/404, not a filtered 200."""
    device_probe: bool = True
    """device_only: also send A's device token with a request naming B's device."""


_TENANT_Q: Mapping[str, str] = {"tenant": "tenant"}
_ANY_TENANT: tuple[Mapping[str, str], ...] = ({}, _TENANT_Q)


def _campaign_body(s: Side) -> dict[str, Any]:
    return {
        "id": f"{s.prefix}-new-campaign",
        "name": f"{s.prefix} new campaign",
        "question": {"type": "stars", "text": "How well could you work today?"},
        "trigger": {"kind": "pulse", "sample_rate": 0.05, "period_days": 7},
        "starts_at": (NOW - timedelta(days=1)).isoformat(),
        "tenant_id": s.objects["tenant"],
    }


def _persona_body(s: Side) -> dict[str, Any]:
    return {"name": f"{s.prefix}-new-persona", "tenant_id": s.objects["tenant"]}


def _webhook_body(s: Side) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:9/new-hook",
        "kind": "generic",
        "name": f"{s.prefix}-new-hook",
        "tenant_id": s.objects["tenant"],
    }


def _ticket(s: Side, suffix: str) -> dict[str, Any]:
    return {
        "external_id": f"{s.prefix}-new-ticket-{suffix}",
        "opened_at": (NOW - timedelta(hours=2)).isoformat(),
        "device_hostname": s.objects["hostname"],
        "category": "software",
        "summary": "Outlook freezes",
    }


def _tickets_csv(s: Side) -> str:
    t = _ticket(s, "csv")
    return (
        "external_id,opened_at,device_hostname,user,category,summary\n"
        f"{t['external_id']},{t['opened_at']},{t['device_hostname']},,software,Outlook freezes\n"
    )


def _xla(s: Side, name: str) -> dict[str, Any]:
    """An XLA definition of the side's tenant (scoped to its persona, so it names it)."""
    return {
        "name": name,
        "tenant_id": s.objects["tenant"],
        "scope": {"persona": s.objects["persona"]},
        "indicator": "experience_score",
        "target": {"comparison": ">=", "value": 70.0},
        "min_devices": 1,
    }


def _xla_body(s: Side) -> dict[str, Any]:
    return _xla(s, f"{s.prefix}-new-xla")


def _batch(s: Side) -> dict[str, Any]:
    return make_batch(s.objects["device"], [resource_event(NOW)])


def _enroll_body(s: Side) -> dict[str, Any]:
    return {
        "enrollment_token": s.objects["viewer_key"],
        "hostname": f"{s.prefix}-intruder",
        "os": "linux",
        "os_version": "6.1",
        "hardware": {},
        "agent_version": "0.1.0",
    }


_EXPLAIN = (
    {"level": "=device", "key": "device"},
    {"level": "=tenant", "key": "tenant"},
    {"level": "=persona", "key": "persona"},
    {"level": "=group", "key": "group"},
    {"level": "=app", "key": "app"},
)

# The route table. Every (method, path) the app serves must be here; see the module doc
# for what each kind checks. Entries for routes the app does not have are inert.
ROUTES: dict[tuple[str, str], Rule] = {
    # --- operations and API docs: no tenant data, no credentials -------------------------
    ("GET", "/healthz"): Rule(Kind.PUBLIC),
    ("GET", "/readyz"): Rule(Kind.PUBLIC),
    # labelled by route template, never by id: nothing of a tenant
    ("GET", "/metrics"): Rule(Kind.PUBLIC),
    ("GET", "/openapi.json"): Rule(Kind.PUBLIC),
    ("HEAD", "/openapi.json"): Rule(Kind.PUBLIC),
    ("GET", "/docs"): Rule(Kind.PUBLIC),
    ("HEAD", "/docs"): Rule(Kind.PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Rule(Kind.PUBLIC),
    ("HEAD", "/docs/oauth2-redirect"): Rule(Kind.PUBLIC),
    ("GET", "/redoc"): Rule(Kind.PUBLIC),
    ("HEAD", "/redoc"): Rule(Kind.PUBLIC),
    # --- agents: device token (enrollment token for enroll), never a person's key -------
    ("POST", "/api/v1/enroll"): Rule(Kind.DEVICE_ONLY, body=_enroll_body, device_probe=False),
    ("POST", "/api/v1/ingest"): Rule(Kind.DEVICE_ONLY, body=_batch),
    ("GET", "/api/v1/agent/config"): Rule(Kind.DEVICE_ONLY),
    # --- inventory ------------------------------------------------------------------------
    ("GET", "/api/v1/devices"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/api/v1/devices/{device_id}"): Rule(Kind.BY_ID, variants=({"device_id": "device"},)),
    ("GET", "/api/v1/devices/{device_id}/events"): Rule(
        Kind.BY_ID, variants=({"device_id": "device"},)
    ),
    ("PUT", "/api/v1/devices/{device_id}/persona"): Rule(
        Kind.WRITE,
        variants=({"device_id": "device"},),
        body=lambda s: {"persona": "developer"},
        watch=("/api/v1/devices/{device}", {}),
    ),
    # --- personas -------------------------------------------------------------------------
    ("GET", "/api/v1/personas"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/api/v1/personas/{name}"): Rule(
        Kind.BY_ID, variants=({"name": "persona"},), queries=_ANY_TENANT
    ),
    ("POST", "/api/v1/personas"): Rule(
        Kind.WRITE, body=_persona_body, watch=("/api/v1/personas", _TENANT_Q)
    ),
    # --- survey campaigns -----------------------------------------------------------------
    ("GET", "/api/v1/campaigns"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/api/v1/campaigns/{campaign_id}"): Rule(
        Kind.BY_ID, variants=({"campaign_id": "campaign"},), queries=_ANY_TENANT
    ),
    ("GET", "/api/v1/campaigns/{campaign_id}/results"): Rule(
        Kind.BY_ID, variants=({"campaign_id": "campaign"},), queries=_ANY_TENANT
    ),
    ("POST", "/api/v1/campaigns"): Rule(
        Kind.WRITE, body=_campaign_body, watch=("/api/v1/campaigns", _TENANT_Q)
    ),
    # --- scores ---------------------------------------------------------------------------
    ("GET", "/api/v1/scores"): Rule(
        Kind.BY_TENANT_QUERY,
        queries=(
            {"level": "=tenant", "tenant": "tenant"},
            {"level": "=device", "tenant": "tenant"},
            {"level": "=device", "device_id": "device"},
            {"level": "=persona", "tenant": "tenant"},
            {"level": "=persona", "persona": "persona"},
            {"level": "=group", "tenant": "tenant"},
            {"level": "=app", "tenant": "tenant"},
            {"level": "=app", "app": "app"},
        ),
    ),
    ("GET", "/api/v1/scores/{level}/{key}/explain"): Rule(
        Kind.BY_ID, variants=_EXPLAIN, queries=_ANY_TENANT
    ),
    # --- alerts ---------------------------------------------------------------------------
    ("GET", "/api/v1/alerts"): Rule(
        Kind.BY_TENANT_QUERY, queries=({"tenant": "tenant", "status": "=all"},)
    ),
    ("GET", "/api/v1/alerts/{alert_id}"): Rule(Kind.BY_ID, variants=({"alert_id": "alert"},)),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): Rule(
        Kind.WRITE, variants=({"alert_id": "alert"},), watch=("/api/v1/alerts/{alert}", {})
    ),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): Rule(
        Kind.WRITE, variants=({"alert_id": "alert"},), watch=("/api/v1/alerts/{alert}", {})
    ),
    # --- tickets --------------------------------------------------------------------------
    ("GET", "/api/v1/tickets"): Rule(
        Kind.BY_TENANT_QUERY,
        queries=(_TENANT_Q, {"alert_id": "alert"}, {"device_id": "device"}),
    ),
    ("POST", "/api/v1/tickets"): Rule(
        Kind.WRITE,
        queries=({"tenant_id": "tenant"},),
        body=lambda s: [_ticket(s, "json")],
        watch=("/api/v1/tickets", _TENANT_Q),
    ),
    ("POST", "/api/v1/tickets/import"): Rule(
        Kind.WRITE,
        queries=({"tenant_id": "tenant"},),
        body=_tickets_csv,
        content_type="text/csv",
        watch=("/api/v1/tickets", _TENANT_Q),
    ),
    # --- webhooks (admins only: A's admin is the caller that matters) ---------------------
    ("GET", "/api/v1/webhooks"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("POST", "/api/v1/webhooks"): Rule(
        Kind.WRITE, body=_webhook_body, watch=("/api/v1/webhooks", _TENANT_Q)
    ),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Rule(
        Kind.WRITE, variants=({"webhook_id": "webhook"},), watch=("/api/v1/webhooks", _TENANT_Q)
    ),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Rule(
        Kind.BY_ID, variants=({"webhook_id": "webhook"},)
    ),
    # --- XLAs, reports and the MSP overview (routes being added; inert until they exist) --
    ("GET", "/api/v1/xlas"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,), needs=("xla",)),
    ("POST", "/api/v1/xlas"): Rule(
        Kind.WRITE, body=_xla_body, watch=("/api/v1/xlas", _TENANT_Q), needs=("xla",)
    ),
    ("GET", "/api/v1/xlas/{xla_id}"): Rule(
        Kind.BY_ID, variants=({"xla_id": "xla"},), queries=_ANY_TENANT, needs=("xla",)
    ),
    ("PUT", "/api/v1/xlas/{xla_id}"): Rule(
        Kind.WRITE,
        variants=({"xla_id": "xla"},),
        body=_xla_body,
        watch=("/api/v1/xlas/{xla}", {}),
        needs=("xla",),
    ),
    ("PATCH", "/api/v1/xlas/{xla_id}"): Rule(
        Kind.WRITE,
        variants=({"xla_id": "xla"},),
        body=_xla_body,
        watch=("/api/v1/xlas/{xla}", {}),
        needs=("xla",),
    ),
    ("DELETE", "/api/v1/xlas/{xla_id}"): Rule(
        Kind.WRITE,
        variants=({"xla_id": "xla"},),
        watch=("/api/v1/xlas/{xla}", {}),
        needs=("xla",),
    ),
    ("GET", "/api/v1/xlas/{xla_id}/evaluations"): Rule(
        Kind.BY_ID, variants=({"xla_id": "xla"},), queries=_ANY_TENANT, needs=("xla",)
    ),
    ("GET", "/api/v1/reports/xla"): Rule(
        Kind.BY_TENANT_QUERY,
        queries=tuple(
            {"tenant": "tenant", "period": "=" + PERIOD, "format": "=" + f}
            for f in ("json", "csv", "html")
        ),
        refuse=True,
        needs=("xla",),
    ),
    ("GET", "/api/v1/msp/overview"): Rule(Kind.MSP_ONLY),
    # --- dashboard: session cookie ---------------------------------------------------------
    ("GET", "/login"): Rule(Kind.PUBLIC),
    ("POST", "/login"): Rule(Kind.PUBLIC),
    ("POST", "/logout"): Rule(Kind.PUBLIC),
    ("GET", "/"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/devices"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/alerts"): Rule(
        Kind.BY_TENANT_QUERY, queries=(_TENANT_Q, {"tenant": "tenant", "status": "=all"})
    ),
    ("GET", "/surveys"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,)),
    ("GET", "/devices/{device_id}"): Rule(
        Kind.BY_ID, variants=({"device_id": "device"},), queries=_ANY_TENANT
    ),
    ("GET", "/alerts/{alert_id}"): Rule(
        Kind.BY_ID, variants=({"alert_id": "alert"},), queries=_ANY_TENANT
    ),
    ("GET", "/personas/{name}"): Rule(
        Kind.BY_ID, variants=({"name": "persona"},), queries=_ANY_TENANT
    ),
    ("GET", "/groups/{tag}/{name}"): Rule(
        Kind.BY_ID,
        variants=({"tag": "=group", "name": "group"}, {"tag": "=site", "name": "site"}),
        queries=_ANY_TENANT,
    ),
    ("GET", "/apps/{name:path}"): Rule(
        Kind.BY_ID, variants=({"name": "app"},), queries=_ANY_TENANT
    ),
    ("POST", "/alerts/{alert_id}/{action}"): Rule(
        Kind.WRITE,
        variants=(
            {"alert_id": "alert", "action": "=acknowledge"},
            {"alert_id": "alert", "action": "=resolve"},
        ),
        watch=("/api/v1/alerts/{alert}", {}),
    ),
    ("GET", "/xlas"): Rule(Kind.BY_TENANT_QUERY, queries=(_TENANT_Q,), needs=("xla",)),
    ("GET", "/msp"): Rule(Kind.MSP_ONLY),
}


def app_routes() -> list[tuple[str, str]]:
    """Every ``(method, path)`` the collector app serves, from an app that is never started
    (``*`` for a route without methods, such as a mount)."""
    app = create_app(Settings(database_url="sqlite://"))
    pairs: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None, f"a route without a path: {route!r}"
        for method in sorted(route.methods or {"*"}):
            pairs.add((method, path))
    return sorted(pairs, key=lambda p: (p[1], p[0]))


APP_ROUTES = app_routes()


# --- the seeded world ---------------------------------------------------------------------


@dataclass
class Side:
    """One tenant's seeded objects, by the keys the route table uses."""

    prefix: str
    objects: dict[str, str] = field(default_factory=dict)
    stand_ins: set[str] = field(default_factory=set)
    """Keys whose object could not be made (its route is absent): a fresh uuid4 instead."""

    def secrets(self) -> set[str]:
        """The ids and names that must never reach the other tenant."""
        private = {"viewer_key", "admin_key", "device_token", "enrollment_token"}
        return {v for k, v in self.objects.items() if k not in private and k not in self.stand_ins}


@dataclass(frozen=True)
class Caller:
    """Who sends a request: an API key, a dashboard session, or nobody."""

    name: str
    api_key: str | None = None
    session: str | None = None


@dataclass
class World:
    """The running collector with tenants A and B and the callers of the checks."""

    url: str
    a: Side
    b: Side
    viewer: Caller
    admin: Caller
    msp: Caller
    client: httpx.Client
    routes: set[tuple[str, str]]
    csrf: dict[str, str] = field(default_factory=dict)


def _event(kind: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "ts": ts.isoformat(), **fields}


def _events(app: str, start: datetime) -> list[dict[str, Any]]:
    """Two days of a workstation that boots, runs ``app`` and sees it hang and crash."""
    out = [
        _event(
            "boot",
            start + timedelta(minutes=5),
            booted_at=start.isoformat(),
            boot_duration_s=45.0,
            boot_kind="cold",
            source="test",
        )
    ]
    for h in range(30):
        ts = start + timedelta(hours=h + 1)
        out.append(resource_event(ts, interval_s=3600))
        out.append(
            _event(
                "app_resource",
                ts,
                app_name=app,
                app_version="1.0",
                interval_s=3600,
                process_count=2,
                cpu_s=30.0,
                rss_mb=200.0,
            )
        )
        if h % 6 == 0:
            out.append(
                _event(
                    "app_crash",
                    ts + timedelta(minutes=10),
                    app_name=app,
                    app_version="1.0",
                    faulting_module="core.dll",
                    source="test",
                )
            )
    return out


def _seed(collector: CollectorProcess, client: httpx.Client) -> World:
    engine = make_engine(normalise_database_url(collector.database_url))
    sides: dict[str, Side] = {}
    tag = uuid.uuid4().hex[:6]
    try:
        with make_sessionmaker(engine)() as session:
            for name, prefix in (("a", f"asafe{tag}"), ("b", f"bsecret{tag}")):
                made = create_tenant(session, f"{prefix}-tenant-name")
                side = Side(prefix)
                side.objects.update(
                    tenant=str(made.tenant_id),
                    tenant_name=f"{prefix}-tenant-name",
                    enrollment_token=made.enrollment_token,
                    viewer_key=create_api_key(session, Role.VIEWER, made.tenant_id),
                    admin_key=create_api_key(session, Role.ADMIN, made.tenant_id),
                )
                sides[name] = side
            a, b = sides["a"], sides["b"]
            msp_key = create_api_key(session, Role.ADMIN, None)
            create_user(session, f"viewer@{a.prefix}.test", PASSWORD, Role.VIEWER, _id(a))
            create_user(session, f"admin@{a.prefix}.test", PASSWORD, Role.ADMIN, _id(a))
            create_user(session, f"msp@{tag}.test", PASSWORD, Role.ADMIN, None)
        msp = {"Authorization": f"Bearer {msp_key}"}
        routes = set(APP_ROUTES)
        for side in (a, b):
            p, o = side.prefix, side.objects
            o.update(hostname=f"{p}-host", group=f"{p}-group", site=f"{p}-site", app=f"{p}-app.exe")
            # the persona first, so the device (in its group) is assigned and scored with it
            expect(
                client.post(
                    "/api/v1/personas",
                    headers=msp,
                    json={
                        "name": f"{p}-persona",
                        "base": "knowledge_worker",
                        "rules": [{"device_group": o["group"]}],
                        "tenant_id": o["tenant"],
                    },
                )
            )
            o["persona"] = f"{p}-persona"
            _seed_xla(client, msp, side, routes)  # before the jobs, so they evaluate it
            tags = {"group": o["group"], "site": o["site"]}
            device = enroll(collector.url, o["enrollment_token"], o["hostname"], tags)
            o.update(device=device.device_id, device_token=device.token)
            events = _events(o["app"], NOW - timedelta(hours=31))
            expect(
                client.post(
                    "/api/v1/ingest",
                    headers=device.headers,
                    json=make_batch(device.device_id, events),
                )
            )
        run_cli(
            "collector", "jobs", "--once", "--as-of", now_utc().isoformat(),
            "--database-url", collector.database_url,
            env={"DEXSCOPE_SCORING_RECEIVE_LAG_S": "0"},
        )  # fmt: skip
        with Session(engine) as session:
            for side in (a, b):
                side.objects["alert"] = _insert_alert(session, side)
            session.commit()
        for side in (a, b):
            p, o = side.prefix, side.objects
            tickets = expect(
                client.post(
                    "/api/v1/tickets",
                    headers=msp,
                    params={"tenant_id": o["tenant"]},
                    json=[
                        {
                            "external_id": f"{p}-ticket",
                            "opened_at": (NOW - timedelta(hours=3)).isoformat(),
                            "device_hostname": o["hostname"],
                            "category": "software",
                            "summary": f"{p} app keeps crashing",
                        }
                    ],
                )
            )
            assert tickets, "the ticket import answered nothing"
            o["ticket_external_id"] = f"{p}-ticket"
            listed = expect(
                client.get("/api/v1/tickets", headers=msp, params={"tenant": o["tenant"]})
            )
            o["ticket"] = str(listed["items"][0]["id"])
            body = {
                "id": f"{p}-campaign",
                "name": f"{p} pulse",
                "question": {"type": "stars", "text": "How well could you work this week?"},
                "trigger": {"kind": "pulse", "sample_rate": 1.0, "period_days": 7},
                "starts_at": (NOW - timedelta(days=3)).isoformat(),
                "tenant_id": o["tenant"],
            }
            expect(client.post("/api/v1/campaigns", headers=msp, json=body))
            o["campaign"] = f"{p}-campaign"
            hook = expect(
                client.post(
                    "/api/v1/webhooks",
                    headers=msp,
                    json={
                        "url": "http://127.0.0.1:9/hook",
                        "kind": "generic",
                        "name": f"{p}-hook",
                        "tenant_id": o["tenant"],
                    },
                )
            )
            o.update(webhook=str(hook["id"]), webhook_name=f"{p}-hook")
    finally:
        engine.dispose()
    url = collector.url
    return World(
        url=url,
        a=a,
        b=b,
        viewer=Caller(
            "A's viewer",
            a.objects["viewer_key"],
            dashboard_login(url, f"viewer@{a.prefix}.test", PASSWORD),
        ),
        admin=Caller(
            "A's admin",
            a.objects["admin_key"],
            dashboard_login(url, f"admin@{a.prefix}.test", PASSWORD),
        ),
        msp=Caller(
            "the MSP-wide admin", msp_key, dashboard_login(url, f"msp@{tag}.test", PASSWORD)
        ),
        client=client,
        routes=routes,
    )


def _id(side: Side) -> uuid.UUID:
    return uuid.UUID(side.objects["tenant"])


def _insert_alert(session: Session, side: Side) -> str:
    """An open device alert (detection is another module's job: inserted directly)."""
    o = side.objects
    alert = Alert(
        tenant_id=_id(side),
        fingerprint=f"change_point:device:{o['device']}:score",
        kind="change_point",
        scope="device",
        scope_key=o["device"],
        metric="score",
        title=f"{o['hostname']}: experience score -25 points below its baseline",
        severity="high",
        status="open",
        onset=NOW - timedelta(days=1),
        detected_at=NOW - timedelta(hours=5),
        affected_count=1,
        affected_device_ids=[o["device"]],
        baseline=80.0,
        current=55.0,
        effect_size=2.5,
        evidence={"test": "cusum of robust z (daily score)", "series": []},
        suspected_change={"kind": "app_version", "name": o["app"], "version": "1.0"},
    )
    session.add(alert)
    session.flush()
    return str(alert.id)


def _seed_xla(client: httpx.Client, msp: Mapping[str, str], side: Side, routes: set[Any]) -> None:
    """An XLA of the side's tenant when the XLA API exists; a stand-in id otherwise."""
    if ("POST", "/api/v1/xlas") in routes:
        o = side.objects
        saved = expect(
            client.post("/api/v1/xlas", headers=msp, json=_xla(side, f"{side.prefix}-xla"))
        )
        items = saved["items"] if isinstance(saved, dict) and "items" in saved else [saved]
        o.update(xla=str(items[0]["id"]), xla_name=f"{side.prefix}-xla")
        return
    side.objects["xla"] = str(uuid.uuid4())
    side.stand_ins.add("xla")


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A collector on each backend, seeded once for the module."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with (
        CollectorProcess(module_database_url, log) as collector,
        httpx.Client(base_url=collector.url, timeout=30) as client,
    ):
        yield _seed(collector, client)


# --- requests -------------------------------------------------------------------------------


def _value(side: Side, spec: str) -> str:
    return spec[1:] if spec.startswith("=") else side.objects[spec]


def _fill(path: str, side: Side, variant: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variant:
            pytest.fail(f"{path}: ROUTES gives no value for the path parameter {name!r}")
        return _value(side, variant[name])

    return re.sub(r"\{(\w+)(?::\w+)?\}", one, path)


@dataclass(frozen=True)
class Sent:
    """A request as sent and its answer."""

    what: str
    response: httpx.Response
    values: frozenset[str]
    """The values the request itself named (an answer may echo them)."""

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self.response.status_code


def _send(
    world: World,
    caller: Caller,
    method: str,
    path: str,
    side: Side,
    variant: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    rule: Rule | None = None,
    bearer: str | None = None,
) -> Sent:
    variant, query = variant or {}, query or {}
    url = _fill(path, side, variant)
    params = {k: _value(side, v) for k, v in query.items()}
    headers: dict[str, str] = {}
    dashboard = not path.startswith("/api/")
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    elif dashboard and caller.session:
        headers["Cookie"] = f"{SESSION_COOKIE}={caller.session}"
    elif caller.api_key:
        headers["Authorization"] = f"Bearer {caller.api_key}"
    content: bytes | None = None
    if dashboard and method == "POST" and caller.session:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        content = f"csrf={_csrf(world, caller)}".encode()
    elif rule is not None and rule.body is not None:
        body = rule.body(side)
        headers["Content-Type"] = rule.content_type
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = world.client.request(method, url, params=params, headers=headers, content=content)
    named = {*params.values(), *(_value(side, v) for v in variant.values())}
    if content is not None:
        named |= {v for v in side.secrets() if v in content.decode("utf-8", "replace")}
    values = frozenset(named)
    return Sent(f"{caller.name}: {method} {response.request.url}", response, values)


def _csrf(world: World, caller: Caller) -> str:
    """The CSRF token of a caller's dashboard session (read from a page's forms)."""
    if caller.name not in world.csrf:
        page = world.client.get("/alerts", headers={"Cookie": f"{SESSION_COOKIE}={caller.session}"})
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, f"no CSRF token on /alerts for {caller.name}: {page.text[:300]}"
        world.csrf[caller.name] = found.group(1)
    return world.csrf[caller.name]


def _leaks(world: World, sent: Sent) -> list[str]:
    """B's ids and names in an answer to A's caller (but what the request itself named)."""
    text = sent.response.text
    return sorted(s for s in world.b.secrets() - sent.values if s in text)


def _assert_no_leak(world: World, sent: Sent) -> None:
    leaked = _leaks(world, sent)
    assert not leaked, (
        f"{sent.what} answered {sent.status} with tenant B's {leaked}: {sent.response.text[:500]}"
    )


def _assert_status(sent: Sent, allowed: tuple[int, ...], why: str) -> None:
    assert sent.status in allowed, (
        f"{sent.what}: expected {' or '.join(map(str, allowed))} ({why}), "
        f"got {sent.status}: {sent.response.text[:500]}"
    )


def _controlled(world: World, rule: Rule) -> bool:
    """Whether the positive control applies (every object the rule needs was seeded)."""
    return not any(k in world.b.stand_ins for k in rule.needs)


def _watched(world: World, rule: Rule) -> Any:
    """What the MSP-wide admin reads at the rule's watch path for B (None: no watch)."""
    if rule.watch is None:
        return None
    path, query = rule.watch
    url = path.format(**world.b.objects)
    params = {k: _value(world.b, v) for k, v in query.items()}
    response = world.client.get(
        url, params=params, headers={"Authorization": f"Bearer {world.msp.api_key}"}
    )
    return response.status_code, response.text


# --- the checks, one per kind -------------------------------------------------------------


def _check_public(world: World, method: str, path: str, rule: Rule) -> None:
    if "{" in path:
        return  # nothing to name without an object; the table entry is the decision
    sent = _send(world, Caller("nobody"), method, path, world.a)
    assert sent.status < 500, f"{sent.what}: {sent.status} {sent.response.text[:500]}"
    assert sent.status not in (401, 403) or path in ("/login", "/logout"), (
        f"{sent.what}: a public route asked for credentials ({sent.status})"
    )
    _assert_no_leak(world, sent)
    leaked_a = sorted(s for s in world.a.secrets() if s in sent.response.text)
    assert not leaked_a, f"{sent.what}: a public route shows tenant A's {leaked_a}"


def _check_device_only(world: World, method: str, path: str, rule: Rule) -> None:
    viewer = _send(
        world, world.viewer, method, path, world.a, rule=rule, bearer=world.viewer.api_key
    )
    _assert_status(viewer, (401, 403), "a person's API key on a device route")
    _assert_no_leak(world, viewer)
    if rule.device_probe:
        token = world.a.objects["device_token"]
        sent = _send(world, Caller("A's device"), method, path, world.b, rule=rule, bearer=token)
        assert sent.status < 500, f"{sent.what}: {sent.status} {sent.response.text[:500]}"
        _assert_no_leak(world, sent)
        assert method == "GET" or not 200 <= sent.status < 300, (
            f"{sent.what}: A's device token was accepted for a request naming B's device"
        )


def _check_by_id(world: World, method: str, path: str, rule: Rule) -> None:
    for variant in rule.variants:
        for query in rule.queries:
            for caller in (world.viewer, world.admin):
                sent = _send(world, caller, method, path, world.b, variant, query)
                _assert_status(sent, (403, 404), "tenant B's object for a caller of tenant A")
                _assert_no_leak(world, sent)
            if _controlled(world, rule):
                control = _send(
                    world, world.msp, method, path, world.b, variant, {**query, **_TENANT_Q}
                )
                _assert_status(control, (200,), "the positive control: B's object exists")


def _check_by_tenant_query(world: World, method: str, path: str, rule: Rule) -> None:
    allowed = (403, 404) if rule.refuse else (200, 403, 404)
    for query in rule.queries:
        for caller in (world.viewer, world.admin):
            sent = _send(world, caller, method, path, world.b, query=query)
            _assert_status(sent, allowed, "a caller of tenant A naming tenant B's objects")
            _assert_no_leak(world, sent)
        if _controlled(world, rule):
            control = _send(world, world.msp, method, path, world.b, query=query)
            _assert_status(control, (200,), "the positive control")
            if rule.shows:
                shown = world.b.secrets() & {
                    s for s in world.b.secrets() if s in control.response.text
                }
                assert shown, (
                    f"{control.what}: the positive control shows nothing of tenant B, so "
                    f"this query cannot tell a leak: {control.response.text[:300]}"
                )


def _check_write(world: World, method: str, path: str, rule: Rule) -> None:
    for variant in rule.variants:
        for query in rule.queries or ({},):
            before = _watched(world, rule)
            for caller in (world.viewer, world.admin):
                sent = _send(world, caller, method, path, world.b, variant, query, rule)
                _assert_status(sent, (403, 404), "a write of a caller of tenant A naming B")
                _assert_no_leak(world, sent)
            after = _watched(world, rule)
            assert before == after, (
                f"{method} {path} by tenant A's callers changed tenant B's {rule.watch}:\n"
                f"before: {before}\nafter: {after}"
            )
            own = _send(world, world.viewer, method, path, world.a, variant, query, rule)
            synthetic = any(k in world.a.stand_ins for k in rule.needs)
            _assert_status(own, (403, 404) if synthetic else (403,), "viewers may not write")


def _check_msp_only(world: World, method: str, path: str, rule: Rule) -> None:
    viewer = _send(world, world.viewer, method, path, world.b, query=_TENANT_Q)
    api = path.startswith("/api/")
    _assert_status(viewer, (403,) if api else (403, 404), "an MSP-wide page for a viewer")
    _assert_no_leak(world, viewer)
    admin = _send(world, world.admin, method, path, world.b, query=_TENANT_Q)
    assert admin.status < 500, f"{admin.what}: {admin.status}"
    _assert_no_leak(world, admin)
    control = _send(world, world.msp, method, path, world.b)
    _assert_status(control, (200,), "the positive control: MSP-wide staff see it")


CHECKS: dict[Kind, Callable[[World, str, str, Rule], None]] = {
    Kind.PUBLIC: _check_public,
    Kind.DEVICE_ONLY: _check_device_only,
    Kind.BY_ID: _check_by_id,
    Kind.BY_TENANT_QUERY: _check_by_tenant_query,
    Kind.WRITE: _check_write,
    Kind.MSP_ONLY: _check_msp_only,
}

# Known leaks, (method, path) -> reason: those cases are strict xfails until fixed.
LEAKS: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for method, path in APP_ROUTES:
        marks = []
        if (method, path) in LEAKS:
            marks.append(pytest.mark.xfail(strict=True, reason=LEAKS[(method, path)]))
        cases.append(pytest.param(method, path, id=f"{method} {path}", marks=marks))
    return cases


def test_the_route_table_is_read_from_the_app() -> None:
    """The enumeration sees the API, the dashboard and the operations routes (so an empty
    or partial listing cannot make the isolation cases pass by having none)."""
    listed = set(APP_ROUTES)
    for expected in (
        ("GET", "/healthz"),
        ("GET", "/api/v1/devices/{device_id}"),
        ("POST", "/api/v1/ingest"),
        ("GET", "/devices/{device_id}"),
        ("POST", "/login"),
    ):
        assert expected in listed, f"{expected} missing from the app's routes: {sorted(listed)}"


@pytest.mark.parametrize(("method", "path"), _cases())
def test_route_keeps_tenants_apart(
    module_database_url: str, request: pytest.FixtureRequest, method: str, path: str
) -> None:
    """A caller of tenant A never reaches tenant B's objects through this route.

    The classification is checked before the seeded world is asked for, so a route missing
    from the table fails with that message even when seeding itself is broken
    (``module_database_url`` is named to keep the per-backend parametrisation).
    """
    rule = ROUTES.get((method, path))
    if rule is None:
        pytest.fail(
            f"route {method} {path} is not classified in test_isolation.ROUTES: "
            "decide how tenant isolation applies to it"
        )
    world: World = request.getfixturevalue("world")
    CHECKS[rule.kind](world, method, path, rule)
