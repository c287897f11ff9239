"""The dashboard service on SQLite and PostgreSQL: its aggregates against the rows stored,
tenant isolation, sorting and paging, CSV, alert actions, CSRF and the cache's invalidation.
"""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import collector.models  # noqa: F401  (every table, for the foreign keys)
from collector.alerts.models import Alert
from collector.dashboard import service
from collector.db import make_engine, make_sessionmaker
from collector.devices.models import Device
from collector.errors import Forbidden, NotFound, UnprocessableEntity
from collector.identity.roles import Identity, Role
from collector.migrate import upgrade
from collector.scores.models import DeviceAppDay, DeviceDayScore, ScoringWatermark
from collector.settings import normalise_database_url
from collector.tenants.models import Tenant
from scoring.aggregate import MIN_DEVICES

END = date(2026, 11, 20)
DAYS = 7


@dataclass
class World:
    """Two tenants with known rollups."""

    session: Session
    a: uuid.UUID
    b: uuid.UUID
    scores: dict[tuple[uuid.UUID, date], float]
    personas: dict[uuid.UUID, str]
    app_minutes: dict[str, float]
    b_device: uuid.UUID


def _score(k: int, d: int) -> float:
    return float(30 + (k * 7 + d * 3) % 65)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    """Tenant A: 6 developers (enough) and 3 executives (not enough) over 7 days; tenant B:
    one device of persona ``b_secret`` in group ``b-only``."""
    engine = make_engine(normalise_database_url(database_url))
    upgrade(engine)
    factory = make_sessionmaker(engine)
    service.clear_cache()
    with factory() as session:
        a, b = Tenant(name="A"), Tenant(name="B")
        session.add_all([a, b])
        session.flush()
        scores: dict[tuple[uuid.UUID, date], float] = {}
        personas: dict[uuid.UUID, str] = {}
        app_minutes: dict[str, float] = {}
        devices = []
        for k in range(9):
            persona = "developer" if k < 6 else "executive"
            dev = Device(
                tenant_id=a.id,
                hostname=f"a-{k:02d}",
                os="linux",
                os_version="6.1",
                agent_version="0.1.0",
                persona=persona,
                tags={"site": "Paris" if k % 2 else "Lyon"},
                last_seen_at=datetime(2026, 11, 20, 12, tzinfo=UTC),
            )
            devices.append(dev)
        secret = Device(
            tenant_id=b.id,
            hostname="b-secret",
            os="linux",
            os_version="6.1",
            agent_version="0.1.0",
            persona="b_secret",
            tags={"group": "b-only"},
        )
        session.add_all([*devices, secret])
        session.flush()
        for k, dev in enumerate(devices):
            personas[dev.id] = str(dev.persona)
            for d in range(DAYS):
                day = END - timedelta(days=DAYS - 1 - d)
                s = _score(k, d)
                scores[(dev.id, day)] = s
                minutes = {
                    "boot": 1.0 + k,
                    "logon": 0.5,
                    "hang": 0.0,
                    "app_crash": 0.0,
                    "system_crash": 0.0,
                }
                session.add(
                    DeviceDayScore(
                        device_id=dev.id,
                        day=day,
                        tenant_id=a.id,
                        persona=dev.persona,
                        score=s,
                        startup=s,
                        responsiveness=s,
                        stability=s,
                        sentiment=None,
                        metrics={},
                        points_lost={"boot": 100 - s},
                        sentiment_confidence=None,
                        active_s=3600.0,
                        time_lost_min=sum(minutes.values()),
                        time_lost=minutes,
                        counts={"boots": 1},
                        scoring_version=1,
                    )
                )
                for app, lost in (("teams.exe", 2.0), ("excel.exe", 0.6 * k)):
                    app_minutes[app] = app_minutes.get(app, 0.0) + lost
                    session.add(
                        DeviceAppDay(
                            device_id=dev.id,
                            day=day,
                            app_name=app,
                            tenant_id=a.id,
                            persona=dev.persona,
                            score=s,
                            hangs=1,
                            crashes=0,
                            time_lost_min=lost,
                        )
                    )
        session.add(
            DeviceDayScore(
                device_id=secret.id,
                day=END,
                tenant_id=b.id,
                persona="b_secret",
                score=1.0,
                startup=1.0,
                responsiveness=1.0,
                stability=1.0,
                sentiment=None,
                metrics={},
                points_lost={},
                sentiment_confidence=None,
                active_s=1.0,
                time_lost_min=999.0,
                time_lost={},
                counts={},
                scoring_version=1,
            )
        )
        session.add(
            ScoringWatermark(
                tenant_id=a.id,
                received_through=datetime(2026, 11, 20, tzinfo=UTC),
                as_of=datetime(2026, 11, 20, tzinfo=UTC),
            )
        )
        session.commit()
        yield World(session, a.id, b.id, scores, personas, app_minutes, secret.id)
    engine.dispose()


def _user(role: Role, tenant: uuid.UUID | None) -> Identity:
    return Identity("user", uuid.uuid4(), role, tenant)


def test_overview_figures_are_the_stored_rows_aggregated(world: World) -> None:
    viewer = _user(Role.VIEWER, world.a)
    page = service.overview_page(world.session, viewer, service.Filters())
    assert page["start"] == END - timedelta(days=DAYS - 1) and page["end"] == END
    assert page["fleet"]["score"] == pytest.approx(statistics.fmean(world.scores.values()))
    cards = {c["name"]: c for c in page["cards"]}
    dev_scores = [s for (d, _), s in world.scores.items() if world.personas[d] == "developer"]
    assert cards["developer"]["enough"] and cards["developer"]["score"] == pytest.approx(
        statistics.fmean(dev_scores)
    )
    last = [
        s for (d, day), s in world.scores.items() if world.personas[d] == "developer" and day == END
    ]
    assert cards["developer"]["share_frustrating"] == pytest.approx(
        sum(s < 50 for s in last) / len(last)
    )
    # 3 executives: fewer than MIN_DEVICES, so no figure at all
    assert sum(p == "executive" for p in world.personas.values()) < MIN_DEVICES
    assert not cards["executive"]["enough"] and cards["executive"]["score"] is None
    apps = {r["app_name"]: r for r in page["tables"]["apps"].rows}
    assert {a: float(r["time_lost_min"]) for a, r in apps.items()} == pytest.approx(
        world.app_minutes
    )
    assert page["tables"]["apps"].rows[0]["app_name"] == max(
        world.app_minutes, key=world.app_minutes.__getitem__
    )
    assert page["alerts"]["open_total"] == 0
    assert "<svg" in page["fleet_chart"] and "Experience score" in page["fleet_chart"]


def test_a_viewer_never_sees_another_tenant(world: World) -> None:
    viewer = _user(Role.VIEWER, world.a)
    mine = service.overview_page(world.session, viewer, service.Filters())
    asked = service.overview_page(world.session, viewer, service.Filters(tenant=world.b))
    assert asked["fleet"] == mine["fleet"]
    assert asked["filters"].tenant is None  # links never carry the other tenant
    assert "b_secret" not in asked["persona_choices"]
    with pytest.raises(NotFound):
        service.device_page(world.session, viewer, service.Filters(), str(world.b_device))
    with pytest.raises(NotFound):
        service.persona_page(world.session, viewer, service.Filters(), "b_secret")
    with pytest.raises(NotFound):
        service.group_page(world.session, viewer, service.Filters(), "group", "b-only")
    table = service.devices_page(world.session, viewer, service.Filters(), csv_all=True)["tables"][
        "devices"
    ]
    assert "b-secret" not in service.table_csv(table)
    # MSP-wide staff see both, and can narrow to one
    staff = _user(Role.ADMIN, None)
    both = service.devices_page(world.session, staff, service.Filters())["tables"]["devices"]
    assert both.total == len(world.personas) + 1
    only_b = service.devices_page(world.session, staff, service.Filters(tenant=world.b))
    assert only_b["tables"]["devices"].total == 1


def test_device_table_sorts_and_pages_in_sql_and_exports_every_row(world: World) -> None:
    user = _user(Role.ANALYST, world.a)
    means = {
        d: statistics.fmean(s for (dev, _), s in world.scores.items() if dev == d)
        for d in world.personas
    }
    worst_first = sorted(means.values())
    page1 = service.devices_page(world.session, user, service.Filters())["tables"]["devices"]
    assert page1.total == len(means) and page1.sorted_in_sql
    assert [r["score"] for r in page1.page_rows()] == pytest.approx(worst_first)
    by_host = service.devices_page(
        world.session, user, service.Filters(sort="hostname", desc=True)
    )["tables"]["devices"]
    hosts = [r["hostname"] for r in by_host.page_rows()]
    assert hosts == sorted(hosts, reverse=True)
    exported = service.devices_page(world.session, user, service.Filters(), csv_all=True)
    rows = list(csv.DictReader(io.StringIO(service.table_csv(exported["tables"]["devices"]))))
    assert len(rows) == len(means)
    assert [float(r["Mean score (0\u2013100)"]) for r in rows] == pytest.approx(
        worst_first, abs=1e-3
    )
    filtered = service.devices_page(world.session, user, service.Filters(persona="executive"))
    assert {r["persona"] for r in filtered["tables"]["devices"].page_rows()} == {"executive"}
    assert filtered["tables"]["devices"].total == 3


def test_scope_and_app_pages(world: World) -> None:
    user = _user(Role.ANALYST, world.a)
    dev = service.persona_page(world.session, user, service.Filters(), "developer")
    assert dev["enough"] and len(dev["tables"]["days"].rows) == DAYS
    exe = service.persona_page(world.session, user, service.Filters(), "executive")
    assert not exe["enough"] and exe["score"] is None and exe["score_chart"] is None
    paris = service.group_page(world.session, user, service.Filters(), "site", "Paris")
    paris_devices = {r["hostname"] for r in paris["tables"]["devices"].rows}
    assert paris_devices and all(int(h[2:]) % 2 == 1 for h in paris_devices)
    teams = service.app_page(world.session, user, service.Filters(), "teams.exe")
    assert teams["devices_n"] == len(world.personas)
    assert teams["time_lost_min"] == pytest.approx(world.app_minutes["teams.exe"])
    with pytest.raises(NotFound):
        service.app_page(world.session, user, service.Filters(), "nothing.exe")


def test_alert_actions_set_who_and_when_and_respect_roles(world: World) -> None:
    now = datetime.now(UTC)
    alert = Alert(
        tenant_id=world.a,
        fingerprint="f",
        kind="change_point",
        scope="persona",
        scope_key="developer",
        metric="score",
        title="developers slower",
        severity="medium",
        onset=now - timedelta(days=1),
        detected_at=now,
    )
    world.session.add(alert)
    world.session.commit()
    analyst = _user(Role.ANALYST, world.a)
    with pytest.raises(Forbidden):
        service.set_alert_status(
            world.session, _user(Role.VIEWER, world.a), str(alert.id), "resolve"
        )
    with pytest.raises(NotFound):
        service.set_alert_status(
            world.session, _user(Role.ADMIN, world.b), str(alert.id), "resolve"
        )
    service.set_alert_status(world.session, analyst, str(alert.id), "acknowledge")
    world.session.refresh(alert)
    assert alert.status == "acknowledged" and alert.acknowledged_by == f"user:{analyst.subject_id}"
    assert alert.acknowledged_at is not None and alert.resolved_at is None
    service.set_alert_status(world.session, analyst, str(alert.id), "resolve")
    world.session.refresh(alert)
    assert alert.status == "resolved" and alert.resolved_at is not None
    page = service.alerts_page(world.session, analyst, service.Filters(status="resolved"))
    assert [r["title"] for r in page["tables"]["alerts"].rows] == ["developers slower"]
    assert (
        service.alerts_page(world.session, analyst, service.Filters())["tables"]["alerts"].total
        == 0
    )


def test_the_cache_follows_the_scoring_watermark(world: World) -> None:
    user = _user(Role.VIEWER, world.a)
    before = service.overview_page(world.session, user, service.Filters())["fleet"]["score"]
    world.session.execute(
        sa.update(DeviceDayScore).where(DeviceDayScore.tenant_id == world.a).values(score=10.0)
    )
    world.session.commit()
    cached = service.overview_page(world.session, user, service.Filters())["fleet"]["score"]
    assert cached == before  # same watermark: the cached aggregate
    mark = world.session.get(ScoringWatermark, world.a)
    assert mark is not None
    mark.updated_at = datetime.now(UTC)
    world.session.commit()
    after = service.overview_page(world.session, user, service.Filters())["fleet"]["score"]
    assert after == pytest.approx(10.0)


def test_filters_round_trip_and_reject_bad_values() -> None:
    tenant = uuid.uuid4()
    f = service.parse_filters(
        {"tenant": str(tenant), "persona": "developer", "days": "30", "sort": "score", "desc": "1"}
    )
    assert f.tenant == tenant and f.days == 30 and f.desc
    again = service.parse_filters(dict(p.split("=") for p in f.query().lstrip("?").split("&")))
    assert again == f
    assert "sort" not in f.shared()
    for bad in (
        {"days": "5"},
        {"tenant": "x"},
        {"to": "yesterday"},
        {"page": "0"},
        {"status": "x"},
    ):
        with pytest.raises(UnprocessableEntity):
            service.parse_filters(bad)


def test_csrf_token_is_bound_to_the_session_and_the_key() -> None:
    token = service.csrf_token("dxs_session", "key")
    assert service.verify_csrf("dxs_session", "key", token)
    assert not service.verify_csrf("dxs_other", "key", token)
    assert not service.verify_csrf("dxs_session", "other key", token)
    assert not service.verify_csrf("dxs_session", "key", None)


def test_csv_cells_cannot_become_formulas() -> None:
    table = service.Table(
        "t",
        "T",
        [service.Column("a", "A"), service.Column("n", "N", "float")],
        [{"a": "=HYPERLINK(1)", "n": -1.5}, {"a": "plain", "n": None}],
    )
    rows = list(csv.reader(io.StringIO(service.table_csv(table))))
    assert rows == [["A", "N"], ["'=HYPERLINK(1)", "-1.5"], ["plain", ""]]
