"""Alerts end to end on SQLite and PostgreSQL: a real collector, real ingest, the real job.

A fleet of 12 devices reports a day and a half of work through the public API; six of them
update ``teams.exe`` to 2.0 and then crash in it. ``dexscope collector jobs --once --as-of``
(a real process) must open one alert naming that update, the API must show it to its tenant
only, let an analyst acknowledge and resolve it, and a replay to an earlier time must remove
what that time could not have known.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import (
    CollectorProcess,
    Device,
    Tenant,
    create_tenant,
    enroll,
    make_batch,
    now_utc,
    resource_event,
    run_cli,
)

NOW = now_utc().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
UPDATE_AT = NOW - timedelta(hours=20)


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with CollectorProcess(module_database_url, log) as proc:
        yield proc


def _event(kind: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "ts": ts.isoformat(), **fields}


def _send(collector: CollectorProcess, device: Device, events: list[dict[str, Any]]) -> None:
    for lo in range(0, len(events), 400):
        response = httpx.post(
            f"{collector.url}/api/v1/ingest",
            json=make_batch(device.device_id, events[lo : lo + 400]),
            headers=device.headers,
            timeout=30,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def fleet(collector: CollectorProcess) -> tuple[Tenant, list[Device]]:
    """12 devices; the first 6 update teams.exe to 2.0 and crash in it afterwards."""
    tenant = create_tenant(collector.database_url)
    devices = [enroll(collector.url, tenant.enrollment_token, f"ws-{i:02d}") for i in range(12)]
    start = NOW - timedelta(hours=36)
    for i, device in enumerate(devices):
        events = []
        for h in range(36):
            ts = start + timedelta(hours=h + 1)
            events.append(resource_event(ts, interval_s=3600))
            events.append(
                _event(
                    "app_resource",
                    ts,
                    app_name="teams.exe",
                    app_version="2.0" if i < 6 and ts > UPDATE_AT else "1.0",
                    interval_s=3600,
                    process_count=3,
                    cpu_s=40.0,
                    rss_mb=300.0,
                )
            )
        events.append(
            _event(
                "boot",
                start + timedelta(minutes=5),
                booted_at=start.isoformat(),
                boot_duration_s=40.0,
                boot_kind="cold",
                source="test",
            )
        )
        if i < 6:
            events.append(
                _event(
                    "software_change",
                    UPDATE_AT + timedelta(minutes=i),
                    change="update",
                    name="teams.exe",
                    version_from="1.0",
                    version_to="2.0",
                    source="test",
                )
            )
            for k in range(3):
                events.append(
                    _event(
                        "app_crash",
                        UPDATE_AT + timedelta(hours=2 + 4 * k, minutes=i),
                        app_name="teams.exe",
                        app_version="2.0",
                        faulting_module="teams.dll",
                        source="test",
                    )
                )
        _send(collector, device, events)
    return tenant, devices


def jobs(collector: CollectorProcess, as_of: datetime) -> dict[str, Any]:
    out = run_cli(
        "collector", "jobs", "--once", "--as-of", as_of.isoformat(),
        "--database-url", collector.database_url,
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(out.stdout)
    assert summary["jobs"]["detect"]["ok"], summary
    return summary


def api(collector: CollectorProcess, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, f"{collector.url}{path}", headers={"Authorization": f"Bearer {key}"},
        timeout=30, **kw,
    )  # fmt: skip


def test_a_crashing_update_opens_one_alert_naming_it(
    collector: CollectorProcess, fleet: tuple[Tenant, list[Device]]
) -> None:
    tenant, _ = fleet
    summary = jobs(collector, NOW)
    assert summary["jobs"]["detect"]["opened"] == 1
    listed = api(collector, tenant.api_key, "GET", "/api/v1/alerts").json()["items"]
    assert len(listed) == 1
    alert = listed[0]
    assert alert["kind"] == "cohort" and alert["scope"] == "app_version"
    assert alert["scope_key"] == "teams.exe@2.0" and alert["metric"] == "app_crash_rate"
    assert alert["status"] == "open"
    assert alert["detected_at"].startswith(NOW.isoformat()[:19])
    assert alert["affected_devices"]["count"] == 6
    assert {d["hostname"] for d in alert["affected_devices"]["devices"]} == {
        f"ws-{i:02d}" for i in range(6)
    }
    change = alert["suspected_change"]
    assert change["name"] == "teams.exe" and change["version"] == "2.0"
    assert change["coverage"] == 1.0 and change["adopters"] == 6
    first_crash = UPDATE_AT + timedelta(hours=2)
    assert datetime.fromisoformat(alert["onset"]) == first_crash
    detail = api(collector, tenant.api_key, "GET", f"/api/v1/alerts/{alert['id']}").json()
    assert detail["evidence"]["adopters"]["events"] == 18
    assert detail["evidence"]["peers"]["events"] == 0
    # the same run again: the alert is updated, not doubled
    again = jobs(collector, NOW)
    assert again["jobs"]["detect"]["opened"] == 0 and again["jobs"]["detect"]["updated"] == 1
    # a user of an affected device calls two hours after detection: that is the lead time
    ticket = {
        "external_id": "INC0010001",
        "opened_at": (NOW + timedelta(hours=2)).isoformat(),
        "device_hostname": "WS-03.corp.example.com",
        "category": "application",
        "summary": "Teams keeps crashing",
    }
    posted = api(collector, tenant.api_key, "POST", "/api/v1/tickets", json=[ticket])
    assert posted.status_code in (200, 201), posted.text
    jobs(collector, NOW + timedelta(hours=3))
    detail = api(collector, tenant.api_key, "GET", f"/api/v1/alerts/{alert['id']}").json()
    assert datetime.fromisoformat(detail["first_ticket_at"]) == NOW + timedelta(hours=2)
    assert detail["lead_time_h"] == 2.0


def test_an_earlier_as_of_knows_nothing_of_it(
    collector: CollectorProcess, fleet: tuple[Tenant, list[Device]]
) -> None:
    tenant, _ = fleet
    jobs(collector, NOW)
    before = UPDATE_AT + timedelta(hours=1)  # after the update, before the first crash
    assert jobs(collector, before)["jobs"]["detect"]["opened"] == 0
    assert api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=all").json()["items"] == []
    jobs(collector, NOW)
    assert len(api(collector, tenant.api_key, "GET", "/api/v1/alerts").json()["items"]) == 1


def test_acknowledge_resolve_roles_and_isolation(
    collector: CollectorProcess, fleet: tuple[Tenant, list[Device]]
) -> None:
    tenant, _ = fleet
    jobs(collector, NOW)
    (alert,) = api(collector, tenant.api_key, "GET", "/api/v1/alerts").json()["items"]
    other = create_tenant(collector.database_url)
    assert api(collector, other.api_key, "GET", "/api/v1/alerts").json()["items"] == []
    assert api(collector, other.api_key, "GET", f"/api/v1/alerts/{alert['id']}").status_code == 404
    post = api(collector, other.api_key, "POST", f"/api/v1/alerts/{alert['id']}/acknowledge")
    assert post.status_code == 404
    viewer = json.loads(
        run_cli(
            "admin", "create-api-key", "--role", "viewer", "--tenant", tenant.tenant_id,
            "--database-url", collector.database_url, "--json",
        ).stdout
    )["api_key"]  # fmt: skip
    assert api(collector, viewer, "GET", f"/api/v1/alerts/{alert['id']}").status_code == 200
    denied = api(collector, viewer, "POST", f"/api/v1/alerts/{alert['id']}/acknowledge")
    assert denied.status_code == 403
    acked = api(collector, tenant.api_key, "POST", f"/api/v1/alerts/{alert['id']}/acknowledge")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"].startswith("api_key:")
    # acknowledged alerts stay active: the next run updates the same one
    assert jobs(collector, NOW)["jobs"]["detect"]["opened"] == 0
    done = api(collector, tenant.api_key, "POST", f"/api/v1/alerts/{alert['id']}/resolve")
    assert done.json()["status"] == "resolved"
    resolved = api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=resolved").json()
    assert [a["id"] for a in resolved["items"]] == [alert["id"]]
    bad = api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=nope")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"


def test_an_alert_nobody_confirms_for_a_day_resolves_itself(
    collector: CollectorProcess, fleet: tuple[Tenant, list[Device]]
) -> None:
    tenant, _ = fleet
    jobs(collector, NOW)
    # four days later the crashes have left the 3-day window: no detector confirms it
    later = NOW + timedelta(days=4)
    summary = jobs(collector, later)
    assert summary["jobs"]["detect"]["resolved"] >= 1
    items = api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=all").json()["items"]
    assert items and all(a["status"] == "resolved" for a in items)
    jobs(collector, NOW)  # back: the replay reopens what was resolved after NOW
    items = api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=all").json()["items"]
    assert any(a["status"] in ("open", "acknowledged") for a in items)


def _the_alert(collector: CollectorProcess, tenant: Tenant) -> dict[str, Any]:
    (alert,) = api(collector, tenant.api_key, "GET", "/api/v1/alerts?status=all").json()["items"]
    detail: dict[str, Any] = api(
        collector, tenant.api_key, "GET", f"/api/v1/alerts/{alert['id']}"
    ).json()
    return detail


def test_a_problem_found_again_soon_after_it_resolved_reopens_its_alert(
    collector: CollectorProcess, fleet: tuple[Tenant, list[Device]]
) -> None:
    tenant, _ = fleet
    jobs(collector, NOW)
    first = _the_alert(collector, tenant)
    assert first["status"] in ("open", "acknowledged") and first["reopen_count"] == 0
    done = api(collector, tenant.api_key, "POST", f"/api/v1/alerts/{first['id']}/resolve")
    resolved_at = datetime.fromisoformat(done.json()["resolved_at"])
    # the crashes are still in the window: the next run (now) finds the problem again
    out = run_cli("collector", "jobs", "--once", "--database-url", collector.database_url)
    detect = json.loads(out.stdout)["jobs"]["detect"]
    assert (detect["reopened"], detect["opened"]) == (1, 0), detect
    back = _the_alert(collector, tenant)
    assert back["id"] == first["id"] and back["detected_at"] == first["detected_at"]
    assert back["status"] == ("acknowledged" if back["acknowledged_at"] else "open")
    assert back["resolved_at"] is None and back["reopen_count"] == 1
    (entry,) = back["reopenings"]
    assert datetime.fromisoformat(entry["resolved_at"]) == resolved_at
    assert entry["reopened_at"] == back["reopened_at"]
    reopened_at = datetime.fromisoformat(back["reopened_at"])
    assert reopened_at > resolved_at

    # a replay to between the two: resolved then, so that run reopens it (at its own time)
    between = resolved_at + (reopened_at - resolved_at) / 2
    assert jobs(collector, between)["jobs"]["detect"]["reopened"] == 1
    again = _the_alert(collector, tenant)
    assert datetime.fromisoformat(again["reopened_at"]) == between
    assert [datetime.fromisoformat(r["resolved_at"]) for r in again["reopenings"]] == [resolved_at]

    # a replay to before the resolution forgets the return: the alert was simply active then
    assert jobs(collector, NOW)["jobs"]["detect"]["reopened"] == 0
    before = _the_alert(collector, tenant)
    assert before["status"] in ("open", "acknowledged") and before["resolved_at"] is None
    assert (before["reopen_count"], before["reopened_at"], before["reopenings"]) == (0, None, [])


def test_reopening_looks_back_exactly_reopen_within(collector: CollectorProcess) -> None:
    """An alert resolved exactly ``REOPEN_WITHIN`` before a finding is not reopened by it
    (a new alert opens); one resolved a second later is."""
    import sqlalchemy as sa

    from collector.alerts.models import Alert
    from collector.alerts.repository import AlertRepository
    from collector.alerts.service import REOPEN_WITHIN
    from collector.db import make_engine, make_sessionmaker
    from collector.settings import normalise_database_url

    tenant = create_tenant(collector.database_url)
    tenant_id = uuid.UUID(tenant.tenant_id)
    as_of = NOW + timedelta(days=30)
    engine = make_engine(normalise_database_url(collector.database_url))
    try:
        with make_sessionmaker(engine)() as session:
            for name, resolved_at in [
                ("at-the-limit", as_of - REOPEN_WITHIN),
                ("inside", as_of - REOPEN_WITHIN + timedelta(seconds=1)),
                ("later", as_of + timedelta(seconds=1)),
            ]:
                session.add(
                    Alert(
                        tenant_id=tenant_id, fingerprint=name, kind="cohort", scope="app",
                        scope_key=name, metric="crash_rate", title=name, severity="minor",
                        status="resolved", onset=as_of - timedelta(days=5),
                        detected_at=as_of - timedelta(days=5), resolved_at=resolved_at,
                    )
                )  # fmt: skip
            session.flush()
            found = AlertRepository(session).resolved_between(
                tenant_id, as_of - REOPEN_WITHIN, as_of
            )
            assert [a.fingerprint for a in found] == ["inside"]
            session.rollback()
            assert session.scalar(sa.select(sa.func.count()).select_from(Alert).where(
                Alert.tenant_id == tenant_id)) == 0  # fmt: skip
    finally:
        engine.dispose()
