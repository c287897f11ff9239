"""The jobs' carried state: stepping hourly with it gives what fresh runs give.

A real collector on each backend, a simulated fleet uploaded through the public API, and
``collector.jobs.run_once`` stepped hourly with one :class:`collector.jobs.JobState`, as a
long-running ``dexscope collector jobs`` does. Late data (a batch received after a step,
timestamped before it) must reach the kept days and windows; the scores must equal a rebuild
from an empty state row for row, and the detectors' inputs a fresh read at every step.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.alerts.cache import EventWindow
from collector.alerts.detection import DetectionSettings
from collector.alerts.service import read_inputs
from collector.db import make_engine, make_sessionmaker
from collector.jobs import JobState, run_once
from collector.scores.cache import ScoringCache
from collector.settings import Settings
from tests.support import CollectorProcess, create_tenant, enroll, make_batch, run_cli

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def rows(engine: sa.Engine) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every device-day and device-app-day, without the computed_at stamp."""
    with engine.connect() as conn:
        days = conn.execute(
            sa.text(
                "SELECT device_id, day, persona, score, startup, responsiveness, stability, "
                "sentiment, metrics, points_lost, time_lost_min, counts, measures "
                "FROM device_day_scores"
            )
        ).all()
        apps = conn.execute(
            sa.text(
                "SELECT device_id, day, app_name, score, hangs, crashes, time_lost_min "
                "FROM device_app_days"
            )
        ).all()
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    for r in days:
        out[(str(uuid.UUID(str(r[0]))), str(r[1]))] = tuple(_plain(v) for v in r[2:])
    for r in apps:
        out[(str(uuid.UUID(str(r[0]))), f"{r[1]} {r[2]}")] = tuple(r[3:])
    return out


def _plain(value: Any) -> Any:
    """A JSON column as sorted JSON text (SQLite returns text, PostgreSQL a dict)."""
    if isinstance(value, str) and value.startswith("{"):
        value = json.loads(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def boot(ts: datetime, seconds: float) -> dict[str, Any]:
    """A wire ``boot`` event."""
    return {
        "type": "boot",
        "event_id": str(uuid.uuid4()),
        "ts": ts.isoformat(),
        "booted_at": (ts - timedelta(seconds=seconds)).isoformat(),
        "boot_duration_s": seconds,
        "boot_kind": "cold",
        "source": "test",
    }


@pytest.fixture
def fleet(database_url: str, tmp_path: Path) -> Iterator[tuple[CollectorProcess, Any, str]]:
    """A collector with a 4-device, 2-day simulated fleet and one device of our own."""
    with CollectorProcess(database_url, tmp_path / "collector.log") as proc:
        tenant = create_tenant(database_url)
        run_cli(
            "simulate",
            "--devices",
            "4",
            "--days",
            "2",
            "--seed",
            "11",
            "--end",
            END.isoformat(),
            "--out",
            str(tmp_path / "fleet"),
            "--server",
            proc.url,
            "--enroll-token",
            tenant.enrollment_token,
            "--workers",
            "1",
            timeout=300,
        )
        device = enroll(proc.url, tenant.enrollment_token, hostname="late-001")
        yield proc, device, tenant.tenant_id


def test_stepping_hourly_with_a_carried_state_gives_the_rows_of_a_fresh_run(
    fleet: tuple[CollectorProcess, Any, str],
) -> None:
    proc, device, tenant_id = fleet
    engine = make_engine(proc.database_url)
    settings = Settings(database_url=proc.database_url, scoring_receive_lag_s=0)
    today = datetime(END.year, END.month, END.day, tzinfo=UTC)
    start = max(today + timedelta(hours=1), END - timedelta(hours=8))

    def upload(events: list[dict[str, Any]]) -> None:
        response = httpx.post(
            f"{proc.url}/api/v1/ingest",
            headers=device.headers,
            json=make_batch(device.device_id, events),
            timeout=30,
        )
        assert response.status_code == 200 and response.json()["accepted"] == len(events)

    upload([boot(start - timedelta(minutes=30), 40.0)])
    detection = DetectionSettings()
    tenant = uuid.UUID(tenant_id)

    def step(t: datetime, state: JobState) -> dict[str, Any]:
        out = run_once(engine, settings, as_of=t, state=state)["jobs"]
        assert out["detect"]["ok"], out
        with make_sessionmaker(engine)() as session:
            carried = read_inputs(
                session, tenant, t, detection, cache=state.detection, receive_lag_s=0
            )
            assert carried == read_inputs(session, tenant, t, detection, receive_lag_s=0)
        assert carried.app_events and carried.probes and carried.day_rows
        return dict(out["scores"])

    try:
        state = JobState()
        summaries = [step(start, state)]
        t = start
        while t < END:
            t += timedelta(hours=1)
            if t == start + timedelta(hours=2):
                # late: received now, timestamped before the last step (kept day, old ts)
                crash = {
                    "type": "app_crash",
                    "event_id": str(uuid.uuid4()),
                    "ts": (start + timedelta(minutes=20)).isoformat(),
                    "app_name": "late.exe",
                    "app_version": "1.0",
                    "source": "test",
                }
                upload([boot(start + timedelta(minutes=10), 300.0), crash])
            summaries.append(step(t, state))
        assert all(s["ok"] for s in summaries), summaries
        assert state.detection.size > 0
        # after the first run, most devices rescored come from what was kept (a device
        # whose first event of the day comes later is read from the database once)
        assert summaries[0]["devices_from_cache"] == 0
        later = summaries[1:]
        from_cache = sum(s["devices_from_cache"] for s in later)
        assert from_cache >= sum(s["devices"] for s in later) / 2, [
            (s["devices"], s["devices_from_cache"]) for s in summaries
        ]
        assert state.scoring.size > 0
        stepped = rows(engine)
        late = stepped[(str(uuid.UUID(device.device_id)), str(today.date()))]

        # a rebuild from an empty state: back before the period, then straight to the end
        run_once(engine, settings, as_of=today - timedelta(days=3))
        run_once(engine, settings, as_of=END)
        assert rows(engine) == stepped
        # the late boot counted: the device's two boots, one of them slow
        assert json.loads(late[-2])["boots"] == 2
    finally:
        engine.dispose()


def test_an_event_window_drops_what_left_it_and_orders_by_time() -> None:
    t0 = datetime(2026, 3, 4, tzinfo=UTC)
    a, b = uuid.UUID(int=2), uuid.UUID(int=1)
    window = EventWindow(project=lambda data: {"target": data["target"]})
    window.add(
        [
            (1, a, "probe", t0 + timedelta(hours=2), uuid.UUID(int=5), {"target": "x", "s": 1}),
            (2, b, "probe", t0 + timedelta(hours=2), uuid.UUID(int=6), {"target": "y"}),
            (3, a, "probe", t0, uuid.UUID(int=7), {"target": "z"}),
        ]
    )
    assert [r[0] for r in window.ordered()] == [3, 2, 1]  # time, then device
    assert window.ordered()[-1][5] == {"target": "x"}  # trimmed to what detectors read
    window.drop_until(t0)
    assert [r[0] for r in window.ordered()] == [2, 1]
    window.add([(2, b, "probe", t0 + timedelta(hours=2), uuid.UUID(int=6), {"target": "y"})])
    assert len(window.rows) == 2  # a key read twice is kept once


def test_the_cache_keeps_only_open_days_and_respects_its_cap() -> None:
    as_of = datetime(2026, 3, 4, 10, tzinfo=UTC)
    received = as_of - timedelta(minutes=2)
    tenant, device = uuid.uuid4(), uuid.uuid4()

    def events(n: int, day: datetime) -> list[Any]:
        return [(k, device, "probe", day, uuid.uuid4(), {}) for k in range(n)]

    cache = ScoringCache(max_events=10)
    cache.store(
        tenant,
        received,
        as_of,
        [
            ((device, as_of.date()), events(4, as_of)),
            ((device, as_of.date() - timedelta(days=1)), events(3, as_of - timedelta(days=1))),
            ((device, as_of.date() - timedelta(days=2)), events(2, as_of - timedelta(days=2))),
        ],
        None,
    )
    kept = cache.take(tenant, received, as_of)
    assert kept is not None and cache.size == 7  # the day before yesterday is not kept
    assert kept.has(device, as_of.date() - timedelta(days=1), as_of.date())
    assert not kept.has(device, as_of.date() - timedelta(days=2), as_of.date())
    # another watermark (another process ran the job, or an earlier as-of): nothing kept
    assert cache.take(tenant, received, as_of + timedelta(hours=1)) is None
    assert cache.size == 0
    # beyond the cap a day is not taken, and the rest stays exact
    cache.store(tenant, received, as_of, [((device, as_of.date()), events(11, as_of))], None)
    assert cache.size == 0
    kept = cache.take(tenant, received, as_of)
    assert kept is not None and not kept.has(device, as_of.date(), as_of.date())


class _Node:
    """A tiny object in a reference cycle, as the caches' evicted windows can be."""

    def __init__(self) -> None:
        self.me = self


def test_settle_heap_freezes_survivors_and_frees_dropped_cycles_at_the_full_collection() -> None:
    import gc
    import weakref

    from collector.jobs import FULL_COLLECT_EVERY

    state = JobState()
    try:
        node = _Node()
        alive = weakref.ref(node)
        state.settle_heap()
        assert gc.get_freeze_count() > 0
        del node
        for _ in range(FULL_COLLECT_EVERY - 2):
            state.settle_heap()
        assert alive() is not None, "a frozen cycle is left alone until the full collection"
        state.settle_heap()
        assert state.runs == FULL_COLLECT_EVERY
        assert alive() is None, "the periodic full collection frees cycles dropped since"
    finally:
        gc.unfreeze()
