"""Ticket import over real HTTP against a real collector, on SQLite and PostgreSQL.

JSON and CSV imports (the simulator's ``tickets.csv`` as it is written), idempotent
re-import, every 422 with the row and field it names, all-or-nothing batches, roles,
tenant isolation, hostname matching, the user kept only as the agent's keyed hash, and
matching to alerts (inserted directly: detection is another module's job).
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agent.platform.common import pseudonymise
from collector.alerts.models import Alert
from collector.db import make_engine, make_sessionmaker
from collector.identity.roles import Role
from collector.identity.service import create_api_key
from collector.settings import normalise_database_url
from collector.tenants.models import Tenant as TenantRow
from collector.tenants.service import create_tenant
from collector.tickets.schemas import CSV_COLUMNS
from collector.tickets.service import (
    first_ticket_at,
    match_tickets_to_alerts,
    pseudonymise_user,
    tickets_for_alert,
)
from tests.support import (
    CollectorProcess,
    Tenant,
    count_rows,
    enroll,
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
def db(collector: CollectorProcess) -> Iterator[sa.Engine]:
    """An engine on the collector's database, for what the API does not show."""
    engine = make_engine(normalise_database_url(collector.database_url))
    yield engine
    engine.dispose()


def _tenant(db: sa.Engine) -> Tenant:
    """A tenant with an admin key bound to it, made in-process (``dexscope admin`` is
    tested in tests/collector/test_cli.py; here the time goes to the HTTP behaviour)."""
    with make_sessionmaker(db)() as session:
        made = create_tenant(session, f"tickets-{uuid.uuid4().hex[:8]}")
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


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tickets.csv`` of two simulated fleets: the small one of the brief and one large
    enough to hold tickets (the simulator opens them on about 0.3 % of device-days)."""
    out: dict[str, Path] = {}
    for name, args in {
        "small": ["--devices", "5", "--days", "3"],
        # a fixed end keeps the fleet, and so its tickets, the same whatever the time
        "large": ["--devices", "60", "--days", "14", "--seed", "1", "--end", "2026-11-01T00:00"],
    }.items():
        directory = tmp_path_factory.mktemp(f"sim-{name}")
        run_cli("simulate", *args, "--out", str(directory))
        out[name] = directory / "tickets.csv"
    return out


def _api_key(collector: CollectorProcess, role: str, tenant_id: str | None) -> str:
    """An API key made in-process (the CLI path is covered by tests/collector/test_cli.py;
    here the time goes to the HTTP behaviour)."""
    engine = make_engine(normalise_database_url(collector.database_url))
    try:
        with make_sessionmaker(engine)() as session:
            return create_api_key(session, Role(role), uuid.UUID(tenant_id) if tenant_id else None)
    finally:
        engine.dispose()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post_json(
    collector: CollectorProcess, key: str, body: Any, params: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{collector.url}/api/v1/tickets",
        content=content,
        params=params,
        headers={"Content-Type": "application/json", **_auth(key)},
        timeout=30,
    )


def _post_csv(
    collector: CollectorProcess,
    key: str,
    body: bytes,
    content_type: str = "text/csv",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{collector.url}/api/v1/tickets/import",
        content=body,
        params=params,
        headers={"Content-Type": content_type, **_auth(key)},
        timeout=30,
    )


def _list(collector: CollectorProcess, key: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{collector.url}/api/v1/tickets", params=params, headers=_auth(key), timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _by_external_id(collector: CollectorProcess, key: str) -> dict[str, dict[str, Any]]:
    return {t["external_id"]: t for t in _list(collector, key, limit="1000")["items"]}


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["message"]
    return error


def _ticket(**fields: Any) -> dict[str, Any]:
    return {
        "external_id": f"INC{uuid.uuid4().hex[:10]}",
        "opened_at": (now_utc() - timedelta(hours=2)).isoformat(),
        "category": "software",
        "summary": "Outlook freezes when opening attachments",
        **fields,
    }


def _pseudonym_key(db: sa.Engine, tenant_id: str) -> str:
    with make_sessionmaker(db)() as session:
        tenant = session.get(TenantRow, uuid.UUID(tenant_id))
        assert tenant is not None
        return tenant.pseudonym_key


def test_user_hash_is_the_agents_function() -> None:
    key = "ab" * 32
    for name in ("alice", "ALICE", "Zoë Ünal", "CORP\\bob"):
        assert pseudonymise_user(key, name) == pseudonymise(bytes.fromhex(key), name)


def test_json_import_matches_hostnames_and_hashes_users(
    collector: CollectorProcess, tenant: Tenant, other: Tenant, db: sa.Engine
) -> None:
    tag = uuid.uuid4().hex[:6]
    fqdn = enroll(collector.url, tenant.enrollment_token, f"WS-{tag}.corp.example.com")
    short = enroll(collector.url, tenant.enrollment_token, f"lt-{tag}")
    elsewhere = enroll(collector.url, other.enrollment_token, f"ws-{tag}")
    tickets = [
        _ticket(device_hostname=f"ws-{tag}", user="Alice.Smith"),  # the FQDN's short name
        _ticket(device_hostname=f"LT-{tag.upper()}.corp.example.com"),  # case, domain
        _ticket(device_hostname=f"WS-{tag}.CORP.example.com", user="bob"),  # exact, any case
        _ticket(device_hostname=f"unknown-{tag}"),
        _ticket(),
    ]
    result = _ok(_post_json(collector, tenant.api_key, tickets))
    assert result == {
        "tenant_id": tenant.tenant_id,
        "received": 5,
        "created": 5,
        "updated": 0,
        "matched_devices": 3,
        "matched_alerts": 0,
    }
    stored = _by_external_id(collector, tenant.api_key)
    devices = [stored[t["external_id"]]["device_id"] for t in tickets]
    assert devices == [fqdn.device_id, short.device_id, fqdn.device_id, None, None]
    assert elsewhere.device_id not in devices

    key = bytes.fromhex(_pseudonym_key(db, tenant.tenant_id))
    first = stored[tickets[0]["external_id"]]
    assert first["user_hash"] == pseudonymise(key, "Alice.Smith")
    assert stored[tickets[2]["external_id"]]["user_hash"] == pseudonymise(key, "bob")
    assert stored[tickets[1]["external_id"]]["user_hash"] is None
    assert "user" not in first
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM tickets")).all()
    assert rows
    assert all("alice" not in repr(tuple(row)).lower() for row in rows)


def test_reimport_updates_and_never_duplicates(collector: CollectorProcess, tenant: Tenant) -> None:
    tickets = [_ticket(summary=f"first version {n}") for n in range(3)]
    assert _ok(_post_json(collector, tenant.api_key, tickets))["created"] == 3
    before = _by_external_id(collector, tenant.api_key)
    changed = [{**t, "summary": "second version", "category": "hardware"} for t in tickets]
    again = _ok(_post_json(collector, tenant.api_key, changed))
    assert (again["created"], again["updated"]) == (0, 3)
    after = _by_external_id(collector, tenant.api_key)
    for ticket in tickets:
        old, new = before[ticket["external_id"]], after[ticket["external_id"]]
        assert new["id"] == old["id"] and new["created_at"] == old["created_at"]
        assert (new["summary"], new["category"]) == ("second version", "hardware")
        assert (
            count_rows(
                collector.database_url, "tickets", "external_id = :e", e=ticket["external_id"]
            )
            == 1
        )


def test_object_form_with_tenant_id(collector: CollectorProcess, tenant: Tenant) -> None:
    body = {"tenant_id": tenant.tenant_id, "tickets": [_ticket()]}
    assert _ok(_post_json(collector, tenant.api_key, body))["created"] == 1


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_import_of_the_simulators_tickets_csv(
    collector: CollectorProcess, other: Tenant, simulated: dict[str, Path]
) -> None:
    for name, path in simulated.items():
        rows = _csv_rows(path)
        result = _ok(_post_csv(collector, other.api_key, path.read_bytes()))
        assert result["received"] == len(rows), name
        again = _ok(_post_csv(collector, other.api_key, path.read_bytes()))
        assert (again["created"], again["updated"]) == (0, len(rows)), name
    rows = _csv_rows(simulated["large"])
    assert rows, "the larger simulated fleet should open at least one ticket"
    stored = _by_external_id(collector, other.api_key)
    for row in rows:
        ticket = stored[row["external_id"]]
        assert datetime.fromisoformat(ticket["opened_at"]) == datetime.fromisoformat(
            row["opened_at"]
        )
        assert (ticket["device_hostname"], ticket["category"], ticket["summary"]) == (
            row["device_hostname"],
            row["category"],
            row["summary"],
        )
        assert ticket["user_hash"] is not None and row["user"] not in json.dumps(ticket)
        extra = {k: v for k, v in row.items() if k not in CSV_COLUMNS and v}
        assert ticket["extra"] == (extra or None)  # e.g. the simulator's incident_id

    # a device enrolled later with a simulated hostname: a re-import matches it
    device = enroll(collector.url, other.enrollment_token, rows[0]["device_hostname"].lower())
    assert _ok(_post_csv(collector, other.api_key, simulated["large"].read_bytes()))
    assert _by_external_id(collector, other.api_key)[rows[0]["external_id"]]["device_id"] == (
        device.device_id
    )


def test_csv_extra_columns_are_kept(collector: CollectorProcess, tenant: Tenant) -> None:
    opened = (now_utc() - timedelta(hours=1)).isoformat()
    body = (
        "\ufeffExternal_ID,opened_at,device_hostname,user,category,summary,incident_id,priority\n"
        f'CSV-{uuid.uuid4().hex[:8]},{opened},,carol,network,"Wi-Fi drops, twice",inc-7,P2\n'
        f"CSV-{uuid.uuid4().hex[:8]},{opened},,,network,VPN slow,,\n"
        "\n"
    ).encode()
    result = _ok(_post_csv(collector, tenant.api_key, body, "text/csv; charset=utf-8"))
    assert result["received"] == 2
    stored = _by_external_id(collector, tenant.api_key)
    lines = body.decode("utf-8-sig").splitlines()
    first, second = (stored[line.split(",")[0]] for line in lines[1:3])
    assert first["extra"] == {"incident_id": "inc-7", "priority": "P2"}
    assert first["summary"] == "Wi-Fi drops, twice"
    assert second["extra"] is None and second["user_hash"] is None and first["user_hash"]


Mutate = Callable[[list[dict[str, Any]]], Any]


def _set(index: int, **fields: Any) -> Mutate:
    def mutate(rows: list[dict[str, Any]]) -> Any:
        rows[index].update(fields)
        return rows

    return mutate


def _drop(index: int, key: str) -> Mutate:
    def mutate(rows: list[dict[str, Any]]) -> Any:
        del rows[index][key]
        return rows

    return mutate


JSON_422: dict[str, tuple[Mutate, str]] = {
    "opened_at missing": (_drop(1, "opened_at"), "rows[1].opened_at"),
    "opened_at without offset": (_set(2, opened_at="2026-11-20T10:00:00"), "rows[2].opened_at"),
    "opened_at not a time": (_set(0, opened_at="yesterday"), "rows[0].opened_at"),
    "opened_at in the future": (
        _set(2, opened_at=(now_utc() + timedelta(days=3)).isoformat()),
        "rows[2].opened_at",
    ),
    "external_id blank": (_set(1, external_id="   "), "rows[1].external_id"),
    "external_id a number": (_set(0, external_id=42), "rows[0].external_id"),
    "external_id too long": (_set(2, external_id="x" * 129), "rows[2].external_id"),
    "external_id repeated": (lambda r: [*r, dict(r[0])], "rows[3].external_id"),
    "category missing": (_drop(0, "category"), "rows[0].category"),
    "summary too long": (_set(1, summary="s" * 1001), "rows[1].summary"),
    "unknown field": (_set(2, priority="P1"), "rows[2].priority"),
    "user empty": (_set(0, user=""), "rows[0].user"),
    "extra nested": (_set(1, extra={"a": {"b": 1}}), "rows[1].extra.a"),
    "ticket not an object": (lambda r: [r[0], "INC1"], "rows[1]"),
    "tenant_id not a uuid": (lambda r: {"tenant_id": "acme", "tickets": r}, "tenant_id"),
    "body not a list": (lambda r: "tickets", ""),
}


@pytest.mark.parametrize("case", list(JSON_422))
def test_json_422_names_row_and_field(
    collector: CollectorProcess, tenant: Tenant, case: str
) -> None:
    mutate, field = JSON_422[case]
    rows = [_ticket() for _ in range(3)]
    error = _error(_post_json(collector, tenant.api_key, mutate(rows)), 422)
    assert error.get("field", "") == field, error
    assert all(
        count_rows(collector.database_url, "tickets", "external_id = :e", e=r["external_id"]) == 0
        for r in rows
        if isinstance(r.get("external_id"), str)
    ), "a refused batch stores nothing"


CSV_HEADER = "external_id,opened_at,device_hostname,user,category,summary"
CSV_422: dict[str, tuple[str, str, str]] = {
    "bad time in row 2": (
        CSV_HEADER,
        "A-1,2026-11-20T10:00:00Z,,,c,s\nA-2,2026-11-20T10:00:00Z,,,c,s\nA-3,soon,,,c,s",
        "rows[2].opened_at",
    ),
    "naive time": (CSV_HEADER, "B-1,2026-11-20 10:00,,,c,s", "rows[0].opened_at"),
    "empty summary": (CSV_HEADER, "C-1,2026-11-20T10:00:00Z,h,u,c,", "rows[0].summary"),
    "missing column": (
        "external_id,opened_at,category",
        "D-1,2026-11-20T10:00:00Z,c",
        "columns",
    ),
    "repeated column": (CSV_HEADER + ",summary", "E-1,2026-11-20T10:00:00Z,,,c,s,t", "columns"),
    "too few fields": (CSV_HEADER, "F-1,2026-11-20T10:00:00Z,h,u,c,s\nF-2,x", "rows[1]"),
    "repeated external_id": (
        CSV_HEADER,
        "G-1,2026-11-20T10:00:00Z,,,c,s\nG-1,2026-11-21T10:00:00Z,,,c,s",
        "rows[1].external_id",
    ),
}


@pytest.mark.parametrize("case", list(CSV_422))
def test_csv_422_names_row_and_field(
    collector: CollectorProcess, tenant: Tenant, case: str
) -> None:
    header, rows, field = CSV_422[case]
    body = f"{header}\n{rows}\n".encode()
    error = _error(_post_csv(collector, tenant.api_key, body), 422)
    assert error.get("field") == field, error
    if field.startswith("rows["):
        assert "CSV line" in error["message"], error


def test_csv_other_refusals(collector: CollectorProcess, tenant: Tenant) -> None:
    good = f"{CSV_HEADER}\nH-{uuid.uuid4().hex[:6]},2026-11-20T10:00:00Z,,,c,s\n".encode()
    assert _error(_post_csv(collector, tenant.api_key, good, "application/json"), 415)["code"] == (
        "unsupported_media_type"
    )
    assert (
        _error(_post_csv(collector, tenant.api_key, "\xff\xfeZ".encode("latin-1")), 422)["code"]
        == "bad_encoding"
    )
    assert _error(_post_csv(collector, tenant.api_key, b""), 422)["field"] == "columns"
    unclosed = f'{CSV_HEADER}\nI-1,2026-11-20T10:00:00Z,,,c,"open quote\n'.encode()
    assert _error(_post_csv(collector, tenant.api_key, unclosed), 422)["code"] == ("malformed_csv")
    assert _error(_post_json(collector, tenant.api_key, b"[{"), 422)["code"] == "malformed_json"


def test_roles_and_tenants(collector: CollectorProcess, tenant: Tenant, other: Tenant) -> None:
    viewer = _api_key(collector, "viewer", tenant.tenant_id)
    analyst = _api_key(collector, "analyst", tenant.tenant_id)
    msp = _api_key(collector, "admin", None)
    csv_body = f"{CSV_HEADER}\nR-{uuid.uuid4().hex[:6]},2026-11-20T10:00:00Z,,,c,s\n".encode()

    assert _error(_post_json(collector, viewer, [_ticket()]), 403)["code"] == "role_required"
    assert _error(_post_csv(collector, viewer, csv_body), 403)["code"] == "role_required"
    assert _error(_post_json(collector, "dxk_not-a-key", [_ticket()]), 401)
    assert _ok(_post_json(collector, analyst, [_ticket()]))["tenant_id"] == tenant.tenant_id
    assert _ok(_post_csv(collector, analyst, csv_body))["received"] == 1

    # a tenant-bound caller cannot write into another tenant
    params = {"tenant_id": other.tenant_id}
    assert _error(_post_json(collector, tenant.api_key, [_ticket()], params), 403)["code"] == (
        "other_tenant"
    )
    # an MSP-wide caller must name the tenant, and an existing one
    assert _error(_post_json(collector, msp, [_ticket()]), 422)["field"] == "tenant_id"
    unknown = {"tenant_id": str(uuid.uuid4())}
    assert _error(_post_json(collector, msp, [_ticket()], unknown), 422)["code"] == (
        "unknown_tenant"
    )
    placed = _ticket()
    assert _ok(_post_json(collector, msp, [placed], params))["tenant_id"] == other.tenant_id
    assert _ok(_post_csv(collector, msp, csv_body, params=params))["tenant_id"] == (other.tenant_id)

    # reading: a viewer sees its tenant only; the same external_id lives apart per tenant
    same = _ticket(summary="tenant A's copy")
    _ok(_post_json(collector, tenant.api_key, [same]))
    _ok(_post_json(collector, other.api_key, [{**same, "summary": "tenant B's copy"}]))
    seen_a = _by_external_id(collector, viewer)
    seen_b = _by_external_id(collector, other.api_key)
    assert seen_a[same["external_id"]]["summary"] == "tenant A's copy"
    assert seen_b[same["external_id"]]["summary"] == "tenant B's copy"
    assert placed["external_id"] in seen_b and placed["external_id"] not in seen_a
    assert {t["tenant_id"] for t in seen_a.values()} == {tenant.tenant_id}
    msp_view = _list(collector, msp, tenant=other.tenant_id, limit="1000")["items"]
    assert {t["tenant_id"] for t in msp_view} == {other.tenant_id}


def _alert(tenant_id: str, devices: list[str], onset: datetime, **fields: Any) -> Alert:
    return Alert(
        tenant_id=uuid.UUID(tenant_id),
        fingerprint=f"test|{uuid.uuid4()}",
        kind="change_point",
        scope="app",
        scope_key="outlook.exe",
        metric="app_hangs",
        title="Outlook hangs more",
        severity="high",
        status="open",
        onset=onset,
        detected_at=onset + timedelta(hours=2),
        affected_count=len(devices),
        affected_device_ids=devices,
        evidence={},
        **fields,
    )


def test_tickets_match_alerts_and_follow_their_changes(
    collector: CollectorProcess, other: Tenant, db: sa.Engine
) -> None:
    tag = uuid.uuid4().hex[:6]
    device = enroll(collector.url, other.enrollment_token, f"alert-{tag}")
    bystander = enroll(collector.url, other.enrollment_token, f"bystander-{tag}")
    now = now_utc()
    onset = now - timedelta(days=3)
    factory = make_sessionmaker(db)
    with factory() as session:
        early = _alert(other.tenant_id, [device.device_id], onset)
        late = _alert(other.tenant_id, [device.device_id], onset + timedelta(hours=6))
        session.add_all([early, late])
        session.commit()

    def ticket(hours_after_onset: float, host: str) -> dict[str, Any]:
        opened = onset + timedelta(hours=hours_after_onset)
        return _ticket(opened_at=opened.isoformat(), device_hostname=host)

    tickets = [
        ticket(-1, f"alert-{tag}"),  # before the onset
        ticket(8, f"alert-{tag}"),  # both alerts cover it: the earliest wins
        ticket(30, f"ALERT-{tag}.example.org"),
        ticket(8, f"bystander-{tag}"),  # not an affected device
    ]
    result = _ok(_post_json(collector, other.api_key, tickets))
    assert (result["matched_devices"], result["matched_alerts"]) == (4, 2)
    stored = _by_external_id(collector, other.api_key)
    assert [stored[t["external_id"]]["alert_id"] for t in tickets] == [
        None,
        str(early.id),
        str(early.id),
        None,
    ]
    assert stored[tickets[3]["external_id"]]["device_id"] == bystander.device_id
    listed = _list(collector, other.api_key, alert_id=str(early.id))
    assert [t["external_id"] for t in listed["items"]] == [
        tickets[1]["external_id"],
        tickets[2]["external_id"],
    ]
    assert _list(collector, other.api_key, device_id=device.device_id)["total"] == 3
    window = _list(
        collector,
        other.api_key,
        **{"from": onset.isoformat(), "to": (onset + timedelta(hours=9)).isoformat()},
        alert_id=str(early.id),
        limit="1",
    )
    assert (window["total"], len(window["items"])) == (1, 1)

    with factory() as session:
        assert first_ticket_at(session, early.id) == onset + timedelta(hours=8)
        assert [t.external_id for t in tickets_for_alert(session, early.id)] == [
            tickets[1]["external_id"],
            tickets[2]["external_id"],
        ]
        assert first_ticket_at(session, late.id) is None
        # the early alert resolves 3 h after its onset: 8 h still falls in the day of grace,
        # 30 h does not and moves to the later alert, still open
        row = session.get(Alert, early.id)
        assert row is not None
        row.status, row.resolved_at = "resolved", onset + timedelta(hours=3)
        changed = match_tickets_to_alerts(session, uuid.UUID(other.tenant_id))
        session.commit()
        assert changed == 1
        assert [t.external_id for t in tickets_for_alert(session, late.id)] == [
            tickets[2]["external_id"]
        ]
        assert match_tickets_to_alerts(session, uuid.UUID(other.tenant_id)) == 0
        session.commit()
    assert _by_external_id(collector, other.api_key)[tickets[2]["external_id"]]["alert_id"] == (
        str(late.id)
    )


def test_listing_pages_and_filters(collector: CollectorProcess, tenant: Tenant) -> None:
    base = now_utc() - timedelta(days=20)
    rows = [_ticket(opened_at=(base + timedelta(minutes=n)).isoformat()) for n in range(5)]
    _ok(_post_json(collector, tenant.api_key, rows))
    window = {"from": base.isoformat(), "to": (base + timedelta(minutes=5)).isoformat()}
    page = _list(collector, tenant.api_key, **window, limit="2", offset="2")
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [t["external_id"] for t in page["items"]] == [r["external_id"] for r in rows[2:4]]
    bad = httpx.get(
        f"{collector.url}/api/v1/tickets",
        params={"limit": "5000"},
        headers=_auth(tenant.api_key),
        timeout=30,
    )
    assert _error(bad, 422)["field"] == "limit"


def test_batch_is_atomic(collector: CollectorProcess, tenant: Tenant) -> None:
    rows = [_ticket() for _ in range(4)]
    rows[3]["opened_at"] = "2026-13-01T00:00:00Z"
    assert _error(_post_json(collector, tenant.api_key, rows), 422)["field"] == "rows[3].opened_at"
    for row in rows:
        assert (
            count_rows(collector.database_url, "tickets", "external_id = :e", e=row["external_id"])
            == 0
        )
