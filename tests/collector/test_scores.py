"""The scoring job and the scores API on a simulated fleet, on SQLite and PostgreSQL.

A real collector process, the fleet uploaded through the public API by ``dexscope
simulate``, ``dexscope collector jobs --once --as-of`` as a real process, and the API over
real HTTP. Checked: every device-day with data is scored; a re-run changes nothing; stepping
the as-of through the period gives exactly the rows of one run at its end (incremental =
full); nothing after the as-of is read; the aggregates and explanations add up; a tenant sees
only its own scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.settings import normalise_database_url
from tests.support import CollectorProcess, Tenant, create_tenant, run_cli

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
DAYS = 4
DEVICES = 8


@pytest.fixture(scope="module")
def collector(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    """One collector per backend."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    with CollectorProcess(module_database_url, log) as proc:
        yield proc


def upload_fleet(collector: CollectorProcess, tenant: Tenant, out: Path, seed: int) -> None:
    """The simulated fleet, enrolled and uploaded through the public API."""
    run_cli(
        "simulate",
        "--devices",
        str(DEVICES),
        "--days",
        str(DAYS),
        "--seed",
        str(seed),
        "--end",
        END.isoformat(),
        "--out",
        str(out),
        "--server",
        collector.url,
        "--enroll-token",
        tenant.enrollment_token,
        "--workers",
        "1",
        timeout=300,
    )


@pytest.fixture(scope="module")
def tenant(collector: CollectorProcess, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    """Tenant A with the simulated fleet uploaded."""
    made = create_tenant(collector.database_url)
    upload_fleet(collector, made, tmp_path_factory.mktemp("fleet"), seed=7)
    return made


@pytest.fixture(scope="module")
def other(collector: CollectorProcess, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    """Tenant B, with a smaller fleet of its own."""
    made = create_tenant(collector.database_url)
    run_cli(
        "simulate",
        "--devices",
        "2",
        "--days",
        "2",
        "--seed",
        "8",
        "--end",
        END.isoformat(),
        "--out",
        str(tmp_path_factory.mktemp("fleet-b")),
        "--server",
        collector.url,
        "--enroll-token",
        made.enrollment_token,
        "--workers",
        "1",
        timeout=300,
    )
    return made


def jobs(database_url: str, as_of: datetime, receive_lag_s: float | None = None) -> dict[str, Any]:
    """``dexscope collector jobs --once --as-of`` as a real process; its JSON summary."""
    env = {} if receive_lag_s is None else {"DEXSCOPE_SCORING_RECEIVE_LAG_S": str(receive_lag_s)}
    out = run_cli(
        "collector",
        "jobs",
        "--once",
        "--as-of",
        as_of.isoformat(),
        "--database-url",
        database_url,
        env=env,
    )
    summary: dict[str, Any] = json.loads(out.stdout)
    assert summary["jobs"]["scores"]["ok"], summary
    return summary


def score_rows(database_url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every stored device-day, keyed by (hostname, day), without its computed_at stamp."""
    engine = sa.create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT d.hostname, s.day, s.persona, s.score, s.startup, "
                    "s.responsiveness, s.stability, s.sentiment, s.metrics, s.points_lost, "
                    "s.time_lost_min, s.counts FROM device_day_scores s "
                    "JOIN devices d ON d.id = s.device_id"
                )
            ).all()
    finally:
        engine.dispose()
    out = {}
    for r in rows:
        values = tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in r[2:])
        out[(r[0], str(r[1]))] = values
    return out


def get(collector: CollectorProcess, caller: Tenant, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{collector.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {caller.api_key}"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def scored(collector: CollectorProcess, tenant: Tenant, other: Tenant) -> dict[str, Any]:
    """The job run once at the end of the period."""
    return jobs(collector.database_url, END)


def test_every_device_day_with_data_is_scored_and_a_rerun_changes_nothing(
    collector: CollectorProcess, scored: dict[str, Any]
) -> None:
    rows = score_rows(collector.database_url)
    hosts = {host for host, _ in rows}
    assert len(hosts) == DEVICES + 2  # both tenants
    assert scored["jobs"]["scores"]["device_days"] == len(rows)
    # weekdays have boots and sign-ins: a score; most device-days have one
    with_score = [v for v in rows.values() if v[1] is not None]
    assert len(with_score) >= len(rows) // 2
    assert all(0.0 <= v[1] <= 100.0 for v in with_score)
    # with the default lag, batches of the last 2 minutes are scored again: same rows
    again = jobs(collector.database_url, END)
    assert again["jobs"]["scores"]["device_days"] == len(rows)
    assert score_rows(collector.database_url) == rows
    # with no lag the watermark passes them; then nothing is new and nothing is rescored
    jobs(collector.database_url, END, receive_lag_s=0)
    idle = jobs(collector.database_url, END, receive_lag_s=0)
    assert idle["jobs"]["scores"]["device_days"] == 0
    assert score_rows(collector.database_url) == rows


def test_stepping_the_as_of_gives_the_rows_of_one_run_and_never_looks_ahead(
    collector: CollectorProcess, scored: dict[str, Any]
) -> None:
    full = score_rows(collector.database_url)
    start = END - timedelta(days=DAYS)
    # back to the middle of the period: nothing after it may count
    middle = start + timedelta(days=2, hours=13)
    jobs(collector.database_url, middle)
    partial = score_rows(collector.database_url)
    assert partial and all(day <= middle.date().isoformat() for _, day in partial)
    finished_days = {k: v for k, v in full.items() if k[1] < middle.date().isoformat()}
    assert {k: v for k, v in partial.items() if k in finished_days} == finished_days
    # the running day holds only what happened before the as-of
    running = [k for k in partial if k[1] == middle.date().isoformat()]
    assert running and any(partial[k] != full.get(k) for k in running)
    # then forward in 6-hour steps to the end: exactly the rows of the one run
    t = middle
    while t < END:
        t = min(t + timedelta(hours=6), END)
        jobs(collector.database_url, t)
    assert score_rows(collector.database_url) == full


def test_scores_api_levels_add_up(
    collector: CollectorProcess, tenant: Tenant, scored: dict[str, Any]
) -> None:
    period = {"from": (END - timedelta(days=DAYS)).date().isoformat(), "to": END.date().isoformat()}
    devices = get(collector, tenant, "/api/v1/scores", level="device", **period)
    assert devices.status_code == 200, devices.text
    items = devices.json()["items"]
    assert {i["hostname"] for i in items} and len({i["device_id"] for i in items}) == DEVICES
    tenant_level = get(collector, tenant, "/api/v1/scores", level="tenant", **period).json()
    for day_item in tenant_level["items"]:
        day_scores = [
            i["score"] for i in items if i["day"] == day_item["day"] and i["score"] is not None
        ]
        assert day_item["devices"] == len(day_scores)
        if day_item["enough"]:
            assert day_item["score"] == pytest.approx(sum(day_scores) / len(day_scores), abs=0.01)
            shares = (
                day_item["share_good"]
                + day_item["share_tolerating"]
                + day_item["share_frustrating"]
            )
            assert shares == pytest.approx(1.0, abs=1e-3)
        else:
            assert day_item["score"] is None  # fewer than 5 devices: not enough data
    personas = get(collector, tenant, "/api/v1/scores", level="persona", **period).json()
    assert sum(i["devices"] for i in personas["items"]) == sum(
        i["devices"] for i in tenant_level["items"]
    )
    # the simulated devices carry no group tag: one group, "ungrouped", the whole tenant
    groups = get(collector, tenant, "/api/v1/scores", level="group", **period).json()["items"]
    assert {g["group"] for g in groups} == {"ungrouped"}
    assert [(g["day"], g["devices"], g["score"]) for g in groups] == [
        (t["day"], t["devices"], t["score"]) for t in tenant_level["items"]
    ]
    rolling = get(collector, tenant, "/api/v1/scores", level="tenant", window=7, **period)
    assert rolling.status_code == 200 and rolling.json()["window"] == 7
    apps = get(collector, tenant, "/api/v1/scores", level="app", **period).json()["items"]
    assert apps and all(a["devices"] >= 1 for a in apps)
    bad = get(collector, tenant, "/api/v1/scores", level="tenant", window=3)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "window"
    backwards = get(
        collector, tenant, "/api/v1/scores", **{"from": "2026-01-02", "to": "2026-01-01"}
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "bad_period"


def test_device_explanation_adds_up_to_its_score_and_names_events(
    collector: CollectorProcess, tenant: Tenant, scored: dict[str, Any]
) -> None:
    items = get(
        collector,
        tenant,
        "/api/v1/scores",
        level="device",
        **{"from": (END - timedelta(days=DAYS)).date().isoformat()},
    ).json()["items"]
    worst = min((i for i in items if i["score"] is not None), key=lambda i: i["score"])
    why = get(
        collector, tenant, f"/api/v1/scores/device/{worst['device_id']}/explain", to=worst["day"]
    )
    assert why.status_code == 200, why.text
    body = why.json()
    assert body["score"] == pytest.approx(worst["score"], abs=0.01)
    lost = sum(c["points_lost"] for c in body["contributors"])
    assert lost == pytest.approx(100.0 - body["score"], abs=0.05)
    assert body["contributors"] == sorted(body["contributors"], key=lambda c: -c["points_lost"])
    assert body["hostname"] == worst["hostname"]
    assert all(e["class"] in ("tolerating", "frustrating", "event") for e in body["events"])
    if body["counts"]["app_crashes"]:
        assert any(e["type"] == "app_crash" for e in body["events"])


def test_scope_explanations(
    collector: CollectorProcess, tenant: Tenant, scored: dict[str, Any]
) -> None:
    why = get(collector, tenant, f"/api/v1/scores/tenant/{tenant.tenant_id}/explain")
    assert why.status_code == 200, why.text
    body = why.json()
    assert body["devices"] == DEVICES
    if body["score"] is not None:
        lost = sum(c["points_lost"] for c in body["contributors"])
        assert lost == pytest.approx(100.0 - body["score"], abs=0.05)
    assert len(body["worst_devices"]) <= 10
    persona = get(collector, tenant, "/api/v1/scores", level="persona").json()["items"][0]
    by_persona = get(collector, tenant, f"/api/v1/scores/persona/{persona['persona']}/explain")
    assert by_persona.status_code == 200
    group = get(collector, tenant, "/api/v1/scores/group/ungrouped/explain").json()
    assert group["devices"] == DEVICES and group["score"] == body["score"]
    missing = get(collector, tenant, "/api/v1/scores/persona/nobody/explain")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_scores"


def test_a_tenant_sees_only_its_own_scores(
    collector: CollectorProcess, tenant: Tenant, other: Tenant, scored: dict[str, Any]
) -> None:
    mine = get(collector, tenant, "/api/v1/scores", level="device").json()["items"]
    theirs = get(collector, other, "/api/v1/scores", level="device").json()["items"]
    assert mine and theirs
    assert not {i["device_id"] for i in mine} & {i["device_id"] for i in theirs}
    # naming the other tenant does not widen a tenant-bound key's view
    widened = get(collector, other, "/api/v1/scores", level="device", tenant=tenant.tenant_id)
    assert {i["device_id"] for i in widened.json()["items"]} == {i["device_id"] for i in theirs}
    device = mine[0]["device_id"]
    assert get(collector, other, f"/api/v1/scores/device/{device}/explain").status_code == 404
    assert (
        get(collector, other, f"/api/v1/scores/tenant/{tenant.tenant_id}/explain").status_code
        == 404
    )
    assert httpx.get(f"{collector.url}/api/v1/scores").status_code == 401


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_identical_scores(
    tmp_path: Path,
) -> None:
    from tests.conftest import _postgres_admin_url
    from tests.support import postgres_database

    results = []
    with postgres_database(_postgres_admin_url()) as pg_url:
        for url in (f"sqlite:///{tmp_path / 'a.db'}", pg_url):
            with CollectorProcess(url, tmp_path / f"collector-{len(results)}.log") as proc:
                made = create_tenant(url, name="same")
                upload_fleet(proc, made, tmp_path / f"fleet-{len(results)}", seed=11)
            jobs(url, END)
            results.append(score_rows(url))
    sqlite_rows, pg_rows = results
    assert sqlite_rows and sqlite_rows.keys() == pg_rows.keys()
    for key, values in sqlite_rows.items():
        for a, b in zip(values, pg_rows[key], strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert a == b or (math.isnan(a) and math.isnan(b)), key
            elif isinstance(a, str) and a.startswith("{"):
                assert json.loads(a) == json.loads(b), key
            else:
                assert a == b, key
