"""Webhooks and alert notifications, end to end, on SQLite and PostgreSQL.

A real collector serves the webhook API; alerts are inserted directly in the database
(detection is another module's job) and queued with ``enqueue_alert_event``; the real
``dexscope collector jobs --once`` process delivers them to a real HTTP receiver on
loopback, which checks the documented signature. Covered: every payload kind, retries
after a 500, Retry-After, failure after the last attempt, a slow receiver that does not
hold up the others, several job processes at once, and tenant isolation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.alerts.models import Alert
from collector.db import make_engine, make_sessionmaker
from collector.identity.roles import Role
from collector.identity.service import create_api_key
from collector.notifications.delivery import backoff_s, parse_retry_after
from collector.notifications.models import NotificationDelivery, Webhook
from collector.notifications.service import enqueue_alert_event
from collector.settings import normalise_database_url
from collector.tenants.service import create_tenant
from tests.support import CollectorProcess, Tenant, enroll, now_utc, run_cli

PUBLIC_URL = "https://dex.example.test"
MAX_ATTEMPTS = 2
TIMEOUT_S = 2.0
SLOW_S = 5.0
JOB_ENV = {
    "DEXSCOPE_PUBLIC_URL": PUBLIC_URL,
    "DEXSCOPE_NOTIFY_BACKOFF_BASE_S": "0",
    "DEXSCOPE_NOTIFY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "DEXSCOPE_NOTIFY_TIMEOUT_S": str(TIMEOUT_S),
}


# --- a real HTTP receiver on loopback ----------------------------------------------------


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POSTs per path from a script of ``(status, headers, delay_s)``; records all."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str], float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str, *responses: tuple[int, dict[str, str], float]) -> str:
        """Script the answers of ``path`` (after the script: 200); returns its URL."""
        with self.lock:
            self.scripts[path] = list(responses)
        return self.url + path

    def at(self, path: str) -> list[Received]:
        """The requests made to ``path``, in arrival order."""
        with self.lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The receiver, serving from a thread (one thread per request: slow ones overlap)."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                script = state.scripts.get(self.path, [])
                status, headers, delay = script.pop(0) if script else (200, {}, 0.0)
            time.sleep(delay)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the client gave up (timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # several job processes connect at once
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- the collector, its database, tenants ------------------------------------------------


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    """One collector per backend."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with CollectorProcess(module_database_url, log) as proc:
        yield proc


@pytest.fixture(scope="module")
def db(collector: CollectorProcess) -> Iterator[sa.Engine]:
    """An engine on the collector's database (alerts are inserted directly)."""
    engine = make_engine(normalise_database_url(collector.database_url))
    yield engine
    engine.dispose()


def _tenant(db: sa.Engine) -> Tenant:
    with make_sessionmaker(db)() as session:
        made = create_tenant(session, f"webhooks-{uuid.uuid4().hex[:8]}")
        key = create_api_key(session, Role.ADMIN, made.tenant_id)
    return Tenant(str(made.tenant_id), made.enrollment_token, key)


@pytest.fixture(scope="module")
def tenant(db: sa.Engine) -> Tenant:
    """Tenant A, with an admin key bound to it."""
    return _tenant(db)


@pytest.fixture(scope="module")
def other(db: sa.Engine) -> Tenant:
    """Tenant B, with an admin key bound to it."""
    return _tenant(db)


@pytest.fixture
def fresh(db: sa.Engine) -> Tenant:
    """A tenant of this test alone (no other test's webhooks get its alerts)."""
    return _tenant(db)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _create(collector: CollectorProcess, key: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{collector.url}/api/v1/webhooks", json=body, headers=_auth(key), timeout=30)


def _webhook(collector: CollectorProcess, key: str, **body: Any) -> dict[str, Any]:
    response = _create(collector, key, **body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def _alert(db: sa.Engine, tenant_id: str, event: str = "opened", **fields: Any) -> Alert:
    """Insert an alert and queue ``event`` for it in the same transaction."""
    onset = now_utc() - timedelta(hours=5)
    values: dict[str, Any] = {
        "tenant_id": uuid.UUID(tenant_id),
        "fingerprint": f"test|{uuid.uuid4()}",
        "kind": "change_point",
        "scope": "app",
        "scope_key": "outlook.exe",
        "metric": "app_hangs",
        "title": "Outlook hangs 3x more since 16.0.1",
        "severity": "high",
        "status": "open",
        "onset": onset,
        "detected_at": onset + timedelta(hours=2),
        "affected_count": 0,
        "affected_device_ids": [],
        "evidence": {},
        "suspected_change": {"type": "software_change", "change": "update", "name": "Outlook"},
        **fields,
    }
    with make_sessionmaker(db)() as session:
        alert = Alert(**values)
        session.add(alert)
        enqueue_alert_event(session, alert, event)
        session.commit()
    return alert


def _jobs(collector: CollectorProcess) -> dict[str, Any]:
    """``dexscope collector jobs --once`` as a real process; the notify job's summary."""
    result = run_cli(
        "collector",
        "jobs",
        "--database-url",
        collector.database_url,
        "--once",
        env=JOB_ENV,
        check=False,
    )
    try:
        summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])["jobs"]
    except (IndexError, ValueError) as exc:
        raise AssertionError(f"no JSON from jobs: {result.stdout}\n{result.stderr}") from exc
    notify: dict[str, Any] = summary["notify"]
    assert notify["ok"], notify
    return notify


def _deliveries(db: sa.Engine, alert_id: uuid.UUID) -> dict[uuid.UUID, NotificationDelivery]:
    with make_sessionmaker(db)() as session:
        rows = session.scalars(
            sa.select(NotificationDelivery).where(NotificationDelivery.alert_id == alert_id)
        )
        return {row.webhook_id: row for row in rows}


def _verify(secret: str, request: Received, tolerance_s: int = 300) -> bool:
    """The receiver's check, written from docs/integrations.md alone."""
    parts = dict(p.split("=", 1) for p in request.headers["X-DexScope-Signature"].split(","))
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    signed = f"{timestamp}.".encode() + request.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


# --- the API ------------------------------------------------------------------------------


def test_webhook_api(
    collector: CollectorProcess, tenant: Tenant, other: Tenant, db: sa.Engine
) -> None:
    made = _webhook(collector, tenant.api_key, url="https://127.0.0.1:1/a", kind="slack")
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    assert made["events"] == ["opened", "updated", "reopened", "resolved", "acknowledged"]
    given = _webhook(
        collector,
        tenant.api_key,
        url="http://localhost:9/x",
        kind="jira",
        project_key="OPS",
        secret="s" * 20,
        min_severity="medium",
        enabled=False,
    )
    assert (given["secret"], given["events"], given["enabled"]) == ("s" * 20, ["opened"], False)

    listed = httpx.get(f"{collector.url}/api/v1/webhooks", headers=_auth(tenant.api_key))
    assert listed.status_code == 200
    items = {w["id"]: w for w in listed.json()["items"]}
    assert {made["id"], given["id"]} <= set(items)
    assert all("secret" not in w for w in items.values())
    assert made["id"] not in {
        w["id"]
        for w in httpx.get(f"{collector.url}/api/v1/webhooks", headers=_auth(other.api_key)).json()[
            "items"
        ]
    }

    bad: dict[str, tuple[dict[str, Any], str]] = {
        "plain http": ({"url": "http://hooks.example.com/a", "kind": "generic"}, "url"),
        "no scheme": ({"url": "hooks.example.com/abc", "kind": "generic"}, "url"),
        "kind": ({"url": "https://h.example.com/", "kind": "pagerduty"}, "kind"),
        "short secret": (
            {"url": "https://h.example.com/", "kind": "generic", "secret": "short"},
            "secret",
        ),
        "jira without project": ({"url": "https://h.example.com/", "kind": "jira"}, "project_key"),
        "severity": (
            {"url": "https://h.example.com/", "kind": "teams", "min_severity": "urgent"},
            "min_severity",
        ),
        "event": (
            {"url": "https://h.example.com/", "kind": "teams", "events": ["closed"]},
            "events[0]",
        ),
    }
    for case, (body, field_name) in bad.items():
        response = _create(collector, tenant.api_key, **body)
        assert response.status_code == 422, (case, response.text)
        assert response.json()["error"]["field"] == field_name, (case, response.text)

    with make_sessionmaker(db)() as session:
        analyst = create_api_key(session, Role.ANALYST, uuid.UUID(tenant.tenant_id))
        msp = create_api_key(session, Role.ADMIN, None)
    body = {"url": "https://h.example.com/", "kind": "generic"}
    loopback = {"url": "https://127.0.0.1:1/b", "kind": "generic"}
    assert _create(collector, analyst, **body).status_code == 403
    assert httpx.get(f"{collector.url}/api/v1/webhooks", headers=_auth(analyst)).status_code == 403
    assert _create(collector, tenant.api_key, **body, tenant_id=other.tenant_id).status_code == 403
    assert _create(collector, msp, **body).json()["error"]["field"] == "tenant_id"
    placed = _webhook(collector, msp, **loopback, tenant_id=other.tenant_id)
    assert placed["tenant_id"] == other.tenant_id
    for key, hook in ((tenant.api_key, made), (other.api_key, placed)):  # leave nothing behind
        gone = httpx.delete(f"{collector.url}/api/v1/webhooks/{hook['id']}", headers=_auth(key))
        assert gone.status_code == 204

    url = f"{collector.url}/api/v1/webhooks/{given['id']}"
    assert httpx.delete(url, headers=_auth(other.api_key)).status_code == 404
    assert httpx.delete(url, headers=_auth(tenant.api_key)).status_code == 204
    assert httpx.get(url + "/deliveries", headers=_auth(tenant.api_key)).status_code == 404


# --- delivery -----------------------------------------------------------------------------


def test_every_kind_is_delivered_signed_and_only_to_its_tenant(
    collector: CollectorProcess,
    fresh: Tenant,
    other: Tenant,
    db: sa.Engine,
    receiver: Receiver,
) -> None:
    tag = uuid.uuid4().hex[:6]
    jira: dict[str, Any] = {"project_key": "DEX"}
    hooks = {
        kind: _webhook(
            collector,
            fresh.api_key,
            url=receiver.on(f"/{tag}/{kind}"),
            kind=kind,
            **(jira if kind == "jira" else {}),
        )
        for kind in ("generic", "slack", "teams", "servicenow", "jira")
    }
    picky = _webhook(
        collector,
        fresh.api_key,
        url=receiver.on(f"/{tag}/critical-only"),
        kind="generic",
        min_severity="critical",
    )
    off = _webhook(
        collector, fresh.api_key, url=receiver.on(f"/{tag}/off"), kind="generic", enabled=False
    )
    theirs = _webhook(collector, other.api_key, url=receiver.on(f"/{tag}/other"), kind="generic")
    device = enroll(collector.url, fresh.enrollment_token, f"PC-{tag}")
    bystander = enroll(collector.url, fresh.enrollment_token, f"secret-host-{tag}")

    alert = _alert(
        db,
        fresh.tenant_id,
        scope="device",
        scope_key=device.device_id,
        affected_count=1,
        affected_device_ids=[device.device_id],
        title=f"PC-{tag} boots slower",
    )
    app_alert = _alert(
        db, fresh.tenant_id, affected_count=1, affected_device_ids=[bystander.device_id]
    )
    assert set(_deliveries(db, alert.id)) == {uuid.UUID(h["id"]) for h in hooks.values()}

    summary = _jobs(collector)
    assert summary["delivered"] >= 2 * len(hooks)
    for path in ("critical-only", "off", "other"):
        assert receiver.at(f"/{tag}/{path}") == [], path
    assert picky["min_severity"] == "critical" and not off["enabled"] and theirs

    rows = _deliveries(db, alert.id)
    bodies: dict[str, Any] = {}
    for kind, hook in hooks.items():
        got = receiver.at(f"/{tag}/{kind}")
        assert len(got) == 2, kind  # the device alert and the app alert
        mine = [r for r in got if str(alert.id) in r.body.decode()]
        assert len(mine) == 1, kind
        request = mine[0]
        assert _verify(hook["secret"], request), kind
        assert not _verify("whsec_another-secret", request)
        tampered = Received(request.path, request.headers, request.body + b" ", request.at)
        assert not _verify(hook["secret"], tampered)
        row = rows[uuid.UUID(hook["id"])]
        assert request.headers["X-DexScope-Event"] == "opened"
        assert request.headers["X-DexScope-Delivery"] == str(row.id)
        assert request.headers["Content-Type"] == "application/json"
        assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)
        bodies[kind] = request.json()
        app_body = next(r for r in got if r is not request).body.decode()
        assert f"secret-host-{tag}" not in app_body, kind  # not device-scoped: no hostname

    generic = bodies["generic"]
    assert {
        "id",
        "kind",
        "scope",
        "title",
        "onset",
        "detected_at",
        "severity",
        "affected_devices",
        "suspected_change",
        "status",
        "event",
        "link",
    } <= set(generic)
    assert (generic["id"], generic["event"], generic["scope"]) == (
        str(alert.id),
        "opened",
        "device",
    )
    assert generic["link"] == f"{PUBLIC_URL}/alerts/{alert.id}"
    assert generic["affected_devices"] == {
        "count": 1,
        "devices": [{"device_id": device.device_id, "hostname": f"PC-{tag}"}],
    }
    assert datetime.fromisoformat(generic["onset"]) == alert.onset

    slack = bodies["slack"]
    assert alert.title in slack["text"] and isinstance(slack["blocks"], list)
    assert {b["type"] for b in slack["blocks"]} >= {"header", "section", "actions"}
    assert any(
        e.get("url") == generic["link"]
        for b in slack["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    )

    teams = bodies["teams"]
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert card["content"]["body"][0]["text"] == alert.title
    assert card["content"]["actions"][0]["url"] == generic["link"]

    snow = bodies["servicenow"]
    assert alert.title in snow["short_description"] and len(snow["short_description"]) <= 160
    assert snow["correlation_id"] == str(alert.id)
    assert snow["urgency"] in {"1", "2", "3"} and snow["impact"] in {"1", "2", "3"}
    assert (snow["urgency"], snow["impact"]) < ("3", "3")  # a high alert is not the lowest
    assert snow["category"] and generic["link"] in snow["description"]

    jira = bodies["jira"]["fields"]
    assert jira["project"] == {"key": "DEX"} and jira["issuetype"] == {"name": "Incident"}
    assert alert.title in jira["summary"] and generic["link"] in jira["description"]
    assert jira["labels"] and all(" " not in label for label in jira["labels"])

    deliveries = httpx.get(
        f"{collector.url}/api/v1/webhooks/{hooks['generic']['id']}/deliveries",
        headers=_auth(fresh.api_key),
    ).json()["items"]
    assert {d["alert_id"] for d in deliveries} == {str(alert.id), str(app_alert.id)}
    assert {d["status"] for d in deliveries} == {"delivered"}


def test_retries_retry_after_last_attempt_and_slow_receivers(
    collector: CollectorProcess, fresh: Tenant, db: sa.Engine, receiver: Receiver
) -> None:
    tag = uuid.uuid4().hex[:6]
    retry_at = datetime.now(UTC) + timedelta(hours=2)
    script: dict[str, tuple[tuple[int, dict[str, str], float], ...]] = {
        "flaky": ((500, {}, 0.0), (200, {}, 0.0)),
        "throttled": ((429, {"Retry-After": "3600"}, 0.0),),
        "busy": ((503, {"Retry-After": format_datetime(retry_at, usegmt=True)}, 0.0),),
        "broken": ((500, {}, 0.0), (502, {}, 0.0), (500, {}, 0.0)),
        "gone": ((410, {}, 0.0),),
        "slow": ((200, {}, SLOW_S), (200, {}, SLOW_S)),
        "fast": (),
    }
    hooks = {
        name: _webhook(
            collector,
            fresh.api_key,
            url=receiver.on(f"/{tag}/{name}", *answers),
            kind="generic",
            secret=f"secret-of-{name}-{tag}",
        )
        for name, answers in script.items()
    }
    alert = _alert(db, fresh.tenant_id, severity="critical")

    def row(name: str) -> NotificationDelivery:
        return _deliveries(db, alert.id)[uuid.UUID(hooks[name]["id"])]

    first = _jobs(collector)
    assert first["duration_s"] < SLOW_S, first  # the slow receiver did not hold the run
    fast, slow = receiver.at(f"/{tag}/fast"), receiver.at(f"/{tag}/slow")
    assert len(fast) == 1 and len(slow) == 1
    assert abs(fast[0].at - slow[0].at) < TIMEOUT_S + 0.5  # sent side by side
    assert (row("fast").status, row("fast").attempts) == ("delivered", 1)
    assert (row("slow").status, row("slow").last_status) == ("pending", None)
    assert "timeout" in (row("slow").last_error or "")
    assert (row("flaky").status, row("flaky").attempts, row("flaky").last_status) == (
        "pending",
        1,
        500,
    )
    throttled = row("throttled")
    wait = (throttled.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert throttled.status == "pending" and 3000 < wait <= 3600
    busy = row("busy")
    assert abs((busy.next_attempt_at - retry_at).total_seconds()) < 5
    assert (row("gone").status, row("gone").attempts, row("gone").last_status) == (
        "failed",
        1,
        410,
    )  # a 4xx other than 408/425/429 is final

    _jobs(collector)
    assert len(receiver.at(f"/{tag}/flaky")) == 2
    flaky = row("flaky")
    assert (flaky.status, flaky.attempts, flaky.last_status) == ("delivered", 2, 200)
    assert flaky.delivered_at is not None
    first_try, second_try = receiver.at(f"/{tag}/flaky")
    assert first_try.headers["X-DexScope-Delivery"] == second_try.headers["X-DexScope-Delivery"]
    assert _verify(hooks["flaky"]["secret"], second_try)
    assert len(receiver.at(f"/{tag}/throttled")) == 1  # Retry-After honoured
    assert len(receiver.at(f"/{tag}/busy")) == 1
    broken = row("broken")
    assert (broken.status, broken.attempts, broken.last_status) == ("failed", MAX_ATTEMPTS, 502)
    assert (row("slow").status, row("slow").attempts) == ("failed", MAX_ATTEMPTS)

    assert len(receiver.at(f"/{tag}/broken")) == MAX_ATTEMPTS
    assert len(receiver.at(f"/{tag}/gone")) == 1  # failed is final: never claimed again


def test_parallel_job_processes_send_each_delivery_once(
    collector: CollectorProcess, fresh: Tenant, db: sa.Engine, receiver: Receiver
) -> None:
    if collector.database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time; the claim race is PostgreSQL's")
    tag = uuid.uuid4().hex[:6]
    for n in range(3):
        _webhook(collector, fresh.api_key, url=receiver.on(f"/{tag}/{n}"), kind="generic")
    alerts = [_alert(db, fresh.tenant_id, title=f"alert {n}") for n in range(8)]
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(_jobs(collector))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    rows = {d.id: d for a in alerts for d in _deliveries(db, a.id).values()}
    if any(d.status != "delivered" for d in rows.values()):  # a receiver too slow once
        _jobs(collector)
        rows = {d.id: d for a in alerts for d in _deliveries(db, a.id).values()}
    assert len(rows) == 3 * len(alerts)
    assert {d.status for d in rows.values()} == {"delivered"}
    got = [r for n in range(3) for r in receiver.at(f"/{tag}/{n}")]
    sent = Counter(uuid.UUID(r.headers["X-DexScope-Delivery"]) for r in got)
    # each attempt went out from exactly one process: never two sends of one attempt
    assert sent == {d.id: d.attempts for d in rows.values()}, results


def test_enqueue_rules(collector: CollectorProcess, fresh: Tenant, db: sa.Engine) -> None:
    _webhook(collector, fresh.api_key, url="https://127.0.0.1:1/r", kind="generic",
             events=["resolved"], min_severity="medium")  # fmt: skip
    low = _alert(db, fresh.tenant_id, event="resolved", severity="low")
    assert _deliveries(db, low.id) == {}
    opened = _alert(db, fresh.tenant_id, event="opened", severity="high")
    assert _deliveries(db, opened.id) == {}
    resolved = _alert(db, fresh.tenant_id, event="resolved", severity="high")
    assert [d.event for d in _deliveries(db, resolved.id).values()] == ["resolved"]
    with make_sessionmaker(db)() as session, pytest.raises(ValueError):
        enqueue_alert_event(session, low, "closed")


def test_unsent_updates_coalesce(fresh: Tenant, db: sa.Engine, receiver: Receiver) -> None:
    with make_sessionmaker(db)() as session:
        session.add(
            Webhook(
                tenant_id=uuid.UUID(fresh.tenant_id),
                url=receiver.url + "/coalesce",
                kind="generic",
                secret="s" * 32,
                events=["opened", "updated"],
            )
        )
        session.commit()
    alert = _alert(db, fresh.tenant_id)
    with make_sessionmaker(db)() as session:
        row = session.get(Alert, alert.id)
        assert row is not None
        for count in (2, 3, 4):
            row.affected_count = count
            assert enqueue_alert_event(session, row, "updated") == 1
        session.commit()
    with make_sessionmaker(db)() as session:
        events = session.scalars(
            sa.select(NotificationDelivery).where(NotificationDelivery.alert_id == alert.id)
        ).all()
    assert sorted(d.event for d in events) == ["opened", "updated"]
    updated = next(d for d in events if d.event == "updated")
    assert updated.payload["affected_devices"]["count"] == 4


def test_a_replay_records_its_events_but_sends_nothing(
    collector: CollectorProcess, fresh: Tenant, db: sa.Engine, receiver: Receiver
) -> None:
    """Events queued by a replay (``jobs --as-of`` in the past) are kept as suppressed and
    the notify job never sends them; a live event to the same webhook still goes out."""
    path = f"/replay-{uuid.uuid4().hex[:8]}"
    _webhook(collector, fresh.api_key, url=receiver.url + path, kind="generic",
             events=["opened"])  # fmt: skip
    with make_sessionmaker(db)() as session:
        onset = now_utc() - timedelta(days=20)
        alert = Alert(
            tenant_id=uuid.UUID(fresh.tenant_id),
            fingerprint=f"replay|{uuid.uuid4()}",
            kind="change_point",
            scope="app",
            scope_key="teams.exe",
            metric="app_hangs",
            title="Teams hangs (replayed)",
            severity="high",
            status="open",
            onset=onset,
            detected_at=onset + timedelta(hours=3),
            affected_count=0,
            affected_device_ids=[],
            evidence={},
        )
        session.add(alert)
        assert enqueue_alert_event(session, alert, "opened", replay=True) == 1
        session.commit()
    assert [d.status for d in _deliveries(db, alert.id).values()] == ["suppressed"]
    live = _alert(db, fresh.tenant_id, title="Teams hangs (live)")
    _jobs(collector)
    assert [d.status for d in _deliveries(db, alert.id).values()] == ["suppressed"]
    titles = [r.json()["title"] for r in receiver.at(path)]
    assert titles == ["Teams hangs (live)"] and live.id


def test_backoff_and_retry_after_parsing() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        full = min(3600.0, 30.0 * 2 ** (attempt - 1))
        delays = [backoff_s(attempt, 30.0, 3600.0, rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    now = datetime.now(UTC)
    assert parse_retry_after("120", now) == 120.0
    later = now.replace(microsecond=0) + timedelta(seconds=90)
    assert parse_retry_after(format_datetime(later, usegmt=True), now) == pytest.approx(
        (later - now).total_seconds()
    )
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
