"""The spool on a real SQLite file: crash safety, bounds, quarantine, counters."""

from __future__ import annotations

import json
import math
import sqlite3
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.spool import BULK_TYPES, CRITICAL_TYPES, Spool, boot_clock, read_stats


def event(kind: str = "resource_sample", pad: int = 0) -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "ts": datetime.now(UTC), "type": kind, "pad": "x" * pad}


def test_batch_survives_a_crash_with_the_same_id(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.append([event() for _ in range(5)])
    first = spool.begin_batch(max_events=3, max_bytes=1 << 20)
    assert first is not None and len(first) == 3
    spool.close()  # the process dies before the collector answered

    reopened = Spool(path)
    again = reopened.begin_batch(max_events=3, max_bytes=1 << 20)
    assert again is not None
    assert again.batch_id == first.batch_id and again.events_json == first.events_json
    reopened.accept(again.batch_id)
    rest = reopened.begin_batch(max_events=10, max_bytes=1 << 20)
    assert rest is not None and len(rest) == 2 and rest.batch_id != first.batch_id
    reopened.accept(rest.batch_id)
    assert reopened.begin_batch(10, 1 << 20) is None
    stats = reopened.stats()
    assert stats.events == 0
    assert stats.counters["events_appended_total"] == 5
    assert stats.counters["uploads_ok_total"] == 2
    assert stats.last_upload_at is not None and stats.last_upload_at.endswith("+00:00")


def test_events_are_json_with_utc_times(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    e = event()
    spool.append([e])
    batch = spool.begin_batch(1, 1 << 20)
    assert batch is not None
    decoded = json.loads(batch.events_json[0])
    assert decoded["event_id"] == str(e["event_id"])
    assert decoded["ts"].endswith("+00:00")


def test_batch_bytes_bound_keeps_at_least_one_event(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.append([event(pad=2000) for _ in range(3)])
    batch = spool.begin_batch(max_events=100, max_bytes=100)
    assert batch is not None and len(batch) == 1


def test_cap_drops_oldest_bulk_first_never_critical(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    spool.append([event("app_crash", pad=1000) for _ in range(10)])
    spool.append([event("resource_sample", pad=1000) for _ in range(100)])
    stats = spool.stats()
    assert stats.bytes <= 64 * 1024
    assert stats.counters["dropped_events_total"] > 0
    assert stats.counters["events_appended_total"] == 110
    assert stats.events == 110 - stats.counters["dropped_events_total"]
    batch = spool.begin_batch(max_events=1000, max_bytes=1 << 30)
    assert batch is not None
    kinds = [json.loads(e)["type"] for e in batch.events_json]
    assert kinds.count("app_crash") == 10
    assert kinds[:10] == ["app_crash"] * 10  # the crashes were the oldest and survived


def test_critical_events_kept_even_over_the_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    spool.append([event("survey_response", pad=1000) for _ in range(100)])
    stats = spool.stats()
    assert stats.events == 100 and stats.counters["dropped_events_total"] == 0


def test_events_in_a_formed_batch_are_never_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    spool.append([event(pad=1000) for _ in range(20)])
    batch = spool.begin_batch(20, 1 << 30)
    assert batch is not None
    spool.append([event(pad=1000) for _ in range(100)])
    again = spool.begin_batch(20, 1 << 30)
    assert again is not None and again.events_json == batch.events_json


def test_expiry_counts_old_events(tmp_path: Path) -> None:
    now = [1_000_000.0]
    spool = Spool(tmp_path / "spool.db", max_age_days=1, clock=lambda: now[0])
    spool.append([event() for _ in range(3)])
    now[0] += 2 * 86400
    spool.append([event()])
    stats = spool.stats()
    assert stats.events == 1 and stats.counters["expired_events_total"] == 3


def test_reject_quarantines_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.append([event() for _ in range(4)])
    batch = spool.begin_batch(4, 1 << 20)
    assert batch is not None
    spool.keep(batch.batch_id, "HTTP 503")
    assert spool.begin_batch(4, 1 << 20).attempts == 1  # type: ignore[union-attr]
    spool.reject(batch.batch_id, "HTTP 422: events[0].cpu_percent")
    stats = spool.stats()
    assert stats.events == 0
    assert stats.rejected_batches == 1
    assert stats.counters["rejected_events_total"] == 4
    assert stats.counters["upload_failures_total"] == 1
    assert "events[0].cpu_percent" in (stats.last_error or "")
    assert spool.quarantined() == [(batch.batch_id, "HTTP 422: events[0].cpu_percent", 4)]


def test_files_are_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Spool(state / "spool.db")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "spool.db").stat().st_mode) == 0o600


def test_keep_then_retry_resends_the_same_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.append([event() for _ in range(3)])
    first = spool.begin_batch(10, 1 << 20)
    assert first is not None
    spool.keep(first.batch_id, "cannot reach https://dex.example: ConnectTimeout")
    spool.append([event()])  # new events wait for a later batch
    again = spool.begin_batch(10, 1 << 20)
    assert again is not None
    assert (again.batch_id, again.events_json, again.attempts) == (
        first.batch_id,
        first.events_json,
        1,
    )
    stats = spool.stats()
    assert stats.counters["upload_failures_total"] == 1
    assert stats.last_error == "cannot reach https://dex.example: ConnectTimeout"
    assert stats.last_error_at is not None


def test_over_the_cap_other_non_critical_go_after_bulk(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024)
    spool.append([event("app_hang", pad=1000)])
    spool.append([event("agent_health", pad=1000) for _ in range(70)])
    batch = spool.begin_batch(1000, 1 << 30)
    assert batch is not None
    kinds = [json.loads(e)["type"] for e in batch.events_json]
    assert kinds[0] == "app_hang"  # the oldest, but bulk samples went first
    assert len(kinds) == 70 - spool.stats().dropped_events_total + 1


def test_marks_are_stored_with_the_events(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    assert spool.mark("boot.last_reported") is None
    spool.append([event("boot")], marks={"boot.last_reported": "b1"})
    spool.close()
    reopened = Spool(path)
    assert reopened.mark("boot.last_reported") == "b1"
    assert reopened.stats().events_appended_total == 1
    assert "mark:boot.last_reported" not in reopened.stats().counters


def test_quarantine_is_capped_and_evictions_are_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", quarantine_max_bytes=5000)
    ids = []
    for _ in range(3):
        spool.append([event(pad=2000)])
        batch = spool.begin_batch(10, 1 << 20)
        assert batch is not None
        spool.reject(batch.batch_id, "HTTP 409: batch id reused")
        ids.append(batch.batch_id)
    kept = [q[0] for q in spool.quarantined()]
    assert kept == ids[1:]
    counters = spool.stats().counters
    assert counters["rejected_batches_total"] == 3
    assert counters["quarantine_evicted_batches_total"] == 1


def test_pending_and_read_only_stats_while_open(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.append([event(), event("boot")])
    spool.begin_batch(1, 1 << 20)
    pending = spool.pending()
    assert pending.events == 2 and pending.bytes > pending.unbatched_bytes > 0
    assert pending.oldest_created is not None
    outside = read_stats(path)  # what `agent status` does while the agent runs
    assert (outside.events, outside.bytes) == (2, pending.bytes)
    assert outside.events_appended_total == 2


def test_events_critical_and_bulk_sets_cover_the_wire() -> None:
    from dexscope.wire import EVENT_TYPES

    assert CRITICAL_TYPES.isdisjoint(BULK_TYPES)
    assert set(EVENT_TYPES) >= CRITICAL_TYPES | BULK_TYPES
    assert set(EVENT_TYPES) - CRITICAL_TYPES - BULK_TYPES == {"app_hang"}


class Tick:
    """An injected clock (seconds) the tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


OLD_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    critical INTEGER NOT NULL,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    batch_id TEXT
);
CREATE INDEX events_batch ON events (batch_id, seq);
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
"""The spool of the first agent builds: no ``bulk``, no boot-clock columns, no quarantine."""


def test_a_spool_of_an_older_agent_is_migrated_and_drains(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    body = json.dumps({"event_id": str(uuid.uuid4()), "ts": "2026-01-01T00:00:00+00:00"})
    old.execute(
        "INSERT INTO events (event_id, type, critical, created, body, size) "
        "VALUES ('e1', 'app_crash', 1, 1000.0, ?, ?)",
        (body, len(body)),
    )
    old.commit()
    old.close()
    wall, mono = Tick(1060.0), Tick(50.0)
    spool = Spool(path, clock=wall, monotonic=mono, boot_id="b1")
    columns = {row[1] for row in spool._db.execute("PRAGMA table_info(events)")}
    assert {"bulk", "mono", "boot"} <= columns
    pending = spool.pending()
    assert pending.events == 1 and pending.oldest_age_s == 60.0  # the wall clock only
    spool.append([event()])
    batch = spool.begin_batch(10, 1 << 20)
    assert batch is not None and batch.events_json[0] == body
    assert batch.ages_s == (None, 0.0)  # the old row has no boot-clock reading
    spool.accept(batch.batch_id)
    assert spool.stats().events == 0
    spool.close()
    Spool(path).close()  # opening a migrated spool again changes nothing


def test_ages_come_from_the_boot_clock_within_a_boot(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    wall, mono = Tick(1_000_000.0), Tick(500.0)
    spool = Spool(path, clock=wall, monotonic=mono, boot_id="b1")
    spool.append([event()])
    mono.now += 40.0
    wall.now += 40.0 - 35.0  # 40 s pass, and the wall clock is set back 35 s
    assert spool.pending().oldest_age_s == 40.0
    batch = spool.begin_batch(10, 1 << 20)
    assert batch is not None and batch.ages_s == (40.0,)
    spool.keep(batch.batch_id, "HTTP 503")
    mono.now += 5.0
    spool.close()

    same_boot = Spool(path, clock=wall, monotonic=mono, boot_id="b1")  # the agent restarted
    retry = same_boot.begin_batch(10, 1 << 20)
    assert retry is not None and retry.batch_id == batch.batch_id and retry.ages_s == (45.0,)
    same_boot.close()

    mono.now = 3.0  # a reboot: the boot clock starts again
    next_boot = Spool(path, clock=wall, monotonic=mono, boot_id="b2")
    retry = next_boot.begin_batch(10, 1 << 20)
    assert retry is not None and retry.ages_s == (None,)
    assert next_boot.pending().oldest_age_s == 5.0  # the wall clock's age (40 - 35 s)
    next_boot.close()


def test_an_event_created_ahead_of_the_wall_clock_counts_as_due(tmp_path: Path) -> None:
    """Spooled in an earlier boot, then the clock went back: its age is unknown, not < 0."""
    path = tmp_path / "spool.db"
    wall = Tick(1_000_000.0)
    Spool(path, clock=wall, boot_id="b1").append([event()])
    wall.now -= 3600.0
    spool = Spool(path, clock=wall, boot_id="b2")
    assert spool.pending().oldest_age_s == math.inf
    spool.close()


def test_without_a_boot_id_only_this_spools_readings_count(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    mono = Tick(10.0)
    first = Spool(path, monotonic=mono)
    first.append([event()])
    first.close()
    second = Spool(path, monotonic=mono)
    second.append([event()])
    batch = second.begin_batch(10, 1 << 20)
    assert batch is not None and batch.ages_s == (None, 0.0)
    second.close()


def test_the_boot_clock_never_goes_back() -> None:
    readings = [boot_clock() for _ in range(1000)]
    assert readings == sorted(readings) and readings[0] > 0
