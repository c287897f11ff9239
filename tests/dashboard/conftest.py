"""A scored demo fleet behind a real collector process, shared by the dashboard tests.

Tenant A gets 12 simulated devices over 7 days (``dexscope simulate --server``), scored
by ``dexscope collector jobs --once``, a survey campaign matching the simulator's pulse,
and one alert row inserted directly (detection fills the table in production). Tenant B
has one device of its own, in group ``b-only``, which A's viewer must never reach.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import collector.models  # noqa: F401  (every table, for the foreign keys)
from collector.alerts.models import Alert
from collector.devices.models import Device
from collector.scores.models import DeviceAppDay, DeviceDayScore
from tests.support import CollectorProcess, Tenant, create_tenant, run_cli

PASSWORD = "correct horse battery staple"


@dataclass
class Fleet:
    """The loaded fleet: URLs, logins and ids the tests use."""

    url: str
    database_url: str
    tenant: Tenant
    other: Tenant
    admin_email: str
    viewer_email: str
    analyst_email: str
    device_id: str
    device_hostname: str
    other_device_id: str
    alert_id: str
    personas: list[str]
    apps: list[str]
    sites: list[str]


def _user(db: str, email: str, role: str, tenant: str) -> None:
    run_cli(
        "admin",
        "create-user",
        email,
        "--role",
        role,
        "--tenant",
        tenant,
        "--database-url",
        db,
        "--password-stdin",
        input_text=PASSWORD + "\n",
    )


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Start a collector on SQLite and load, score and annotate the demo fleet."""
    base = tmp_path_factory.mktemp("dashboard")
    db = f"sqlite:///{base / 'collector.db'}"
    run_cli("collector", "migrate", "--database-url", db)
    a = create_tenant(db, "Acme")
    b = create_tenant(db, "Globex")
    _user(db, "lead@acme.test", "admin", a.tenant_id)
    _user(db, "viewer@acme.test", "viewer", a.tenant_id)
    _user(db, "analyst@acme.test", "analyst", a.tenant_id)
    with CollectorProcess(db, base / "collector.log") as collector:
        run_cli(
            "simulate",
            "--devices",
            "12",
            "--days",
            "7",
            "--seed",
            "7",
            "--out",
            str(base / "sim"),
            "--server",
            collector.url,
            "--enroll-token",
            a.enrollment_token,
            timeout=300,
        )
        other = httpx.post(
            f"{collector.url}/api/v1/enroll",
            json={
                "enrollment_token": b.enrollment_token,
                "hostname": "globex-secret-01",
                "os": "linux",
                "os_version": "6.1",
                "hardware": {},
                "agent_version": "0.1.0",
                "tags": {"group": "b-only"},
            },
            timeout=30,
        )
        assert other.status_code == 201, other.text
        now = datetime.now(UTC)
        campaign = httpx.post(
            f"{collector.url}/api/v1/campaigns",
            headers={"Authorization": f"Bearer {a.api_key}"},
            json={
                "id": "sim-pulse",
                "name": "Weekly pulse",
                "question": {"type": "stars", "text": "How well could you work this week?"},
                "trigger": {"kind": "pulse", "sample_rate": 0.05, "period_days": 7},
                "starts_at": (now - timedelta(days=30)).isoformat(),
                "min_responses": 1,
            },
            timeout=30,
        )
        assert campaign.status_code == 201, campaign.text
        run_cli("collector", "jobs", "--database-url", db, "--once", timeout=300)
        engine = sa.create_engine(db)
        with Session(engine) as session:
            tenant_a = uuid.UUID(a.tenant_id)
            device_id, hostname = session.execute(
                sa.select(Device.id, Device.hostname)
                .join(DeviceDayScore, DeviceDayScore.device_id == Device.id)
                .where(Device.tenant_id == tenant_a)
                .group_by(Device.id, Device.hostname)
                .order_by(sa.func.avg(DeviceDayScore.score))
                .limit(1)
            ).one()
            device_uuid = str(device_id)
            personas = list(
                session.scalars(
                    sa.select(DeviceDayScore.persona).distinct().order_by(DeviceDayScore.persona)
                )
            )
            apps = list(
                session.scalars(
                    sa.select(DeviceAppDay.app_name)
                    .group_by(DeviceAppDay.app_name)
                    .order_by(sa.func.sum(DeviceAppDay.time_lost_min).desc())
                )
            )
            sites = sorted(
                {
                    str(tags["site"])
                    for tags in session.scalars(
                        sa.select(Device.tags).where(Device.tenant_id == tenant_a)
                    )
                    if tags and tags.get("site")
                }
            )
            alert = Alert(
                tenant_id=tenant_a,
                fingerprint=f"change_point:device:{device_uuid}:score",
                kind="change_point",
                scope="device",
                scope_key=device_uuid,
                metric="score",
                title=f"{hostname}: experience score -27 points below its baseline",
                severity="high",
                status="open",
                onset=now - timedelta(days=2),
                detected_at=now - timedelta(days=1),
                affected_count=1,
                affected_device_ids=[device_uuid],
                baseline=78.0,
                current=51.0,
                effect_size=2.7,
                evidence={
                    "test": "cusum of robust z (daily score)",
                    "series": [
                        {"day": (now - timedelta(days=6 - k)).date().isoformat(), "score": v}
                        for k, v in enumerate([80, 79, 78, 77, 60, 52, 51])
                    ],
                },
                suspected_change={"kind": "app_version", "name": "Teams", "version": "24.1"},
            )
            session.add(alert)
            session.commit()
            alert_id = alert.id
        engine.dispose()
        yield Fleet(
            url=collector.url,
            database_url=db,
            tenant=a,
            other=b,
            admin_email="lead@acme.test",
            viewer_email="viewer@acme.test",
            analyst_email="analyst@acme.test",
            device_id=device_uuid,
            device_hostname=hostname,
            other_device_id=other.json()["device_id"],
            alert_id=str(alert_id),
            personas=personas,
            apps=apps,
            sites=sites,
        )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the screenshots go (kept by CI as test artefacts)."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path
