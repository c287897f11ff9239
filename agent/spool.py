"""A transactional on-disk spool: SQLite in WAL mode under the state directory.

Life of an event: ``append`` → ``begin_batch`` assigns it to a batch id (in one
transaction) → the uploader sends that batch → ``accept`` deletes it, ``keep`` leaves it for
a retry with the *same* batch id, ``reject`` moves it to a capped quarantine. Because a batch
is formed once and persisted, a kill -9 at any moment neither loses events nor makes the
collector store them twice (it deduplicates on batch id).

Bounds: when the spool holds more than ``max_bytes``, the oldest *bulk* events not yet in a
batch are dropped first and counted; critical events (crashes, survey answers, boots, sign-ins,
software changes) are never dropped for space. Events older than ``max_age_days`` are expired
(counted), because the collector would refuse them anyway.

Clocks: each event is stored with its wall-clock ``created`` time and, because the wall clock
jumps (NTP, a user, a VM resumed), with a reading of the boot clock (:func:`boot_clock`) and the
boot it belongs to. Within one boot the boot clock gives an event's true age; the uploader uses
it to decide when a batch is due and to re-stamp events stamped by a clock that ran fast.
Spool files of older agents are migrated in place (their rows have no boot-clock reading and
are aged by the wall clock).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agent.jsonutil import dumps, utc_iso

__all__ = [
    "BULK_TYPES",
    "COUNTERS",
    "CRITICAL_TYPES",
    "Pending",
    "Spool",
    "SpoolBatch",
    "SpoolStats",
    "boot_clock",
    "read_marks",
    "read_stats",
]

CRITICAL_TYPES = frozenset(
    {"app_crash", "system_crash", "survey_response", "software_change", "boot", "logon"}
)
"""Event types the spool never drops to make room."""

BULK_TYPES = frozenset({"resource_sample", "app_resource", "agent_health", "probe"})
"""Periodic samples: the first to go (oldest first) when the spool is over its byte bound.

Types in neither set (``app_hang``) are not critical either and are dropped after bulk."""

COUNTERS = (
    "events_appended_total",
    "dropped_events_total",
    "expired_events_total",
    "rejected_batches_total",
    "rejected_events_total",
    "quarantine_evicted_batches_total",
    "uploads_ok_total",
    "upload_failures_total",
)
"""The persistent counters every spool keeps (all start at 0)."""

_QUARANTINE_MAX_BYTES = 8 * 1024 * 1024
"""Default bound of the quarantine; past it the oldest quarantined batch goes (counted)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    critical INTEGER NOT NULL,
    bulk INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    batch_id TEXT,
    mono REAL,
    boot TEXT
);
CREATE INDEX IF NOT EXISTS events_batch ON events (batch_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS quarantine (
    batch_id TEXT PRIMARY KEY,
    rejected_at REAL NOT NULL,
    reason TEXT NOT NULL,
    events INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_MIGRATIONS = (
    ("bulk", "ALTER TABLE events ADD COLUMN bulk INTEGER NOT NULL DEFAULT 1"),
    ("mono", "ALTER TABLE events ADD COLUMN mono REAL"),
    ("boot", "ALTER TABLE events ADD COLUMN boot TEXT"),
)
"""Columns of ``events`` added since the first spool format, and how to add each."""


def boot_clock() -> float:
    """Seconds on a clock that never jumps and counts from this boot.

    Linux: ``CLOCK_BOOTTIME`` (it goes on during suspend, like ``boot_id`` it is per boot);
    elsewhere :func:`time.monotonic` (macOS and Windows count it from boot as well, but it
    may stand still while the machine sleeps, so ages read from it are never too long).
    """
    if sys.platform == "linux":
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()  # pragma: no cover - exercised off Linux


@dataclass(frozen=True)
class SpoolBatch:
    """A batch ready to send: its id and its events as JSON texts (in order)."""

    batch_id: str
    events_json: tuple[str, ...]
    attempts: int
    ages_s: tuple[float | None, ...] = ()
    """Per event, its age on the boot clock when the batch was read (None: the event was
    spooled in an earlier boot or by an agent that did not record it)."""

    def __len__(self) -> int:
        return len(self.events_json)


@dataclass(frozen=True)
class Pending:
    """What waits to be sent: events (in a batch or not), their bytes, the oldest's age.

    ``oldest_age_s`` is how long the oldest waiting event has waited, never negative: the
    larger of its boot-clock age (events spooled in this boot) and its wall-clock age; an
    event whose wall-clock ``created`` lies ahead of the clock now (the clock was set back
    since) counts as waiting forever (``inf``), so a backward jump never holds events back.
    """

    events: int
    bytes: int
    unbatched_bytes: int
    oldest_created: float | None
    oldest_age_s: float | None = None


@dataclass(frozen=True)
class SpoolStats:
    """Depth and counters of the spool (what ``agent status`` shows)."""

    events: int
    bytes: int
    oldest_created: float | None
    counters: Mapping[str, int]
    last_upload_at: str | None
    last_error: str | None
    last_error_at: str | None

    @property
    def events_appended_total(self) -> int:
        """Events ever appended (incremented in the same transaction as each append)."""
        return self.counters["events_appended_total"]

    @property
    def dropped_events_total(self) -> int:
        """Bulk events dropped because the spool was over ``max_bytes``."""
        return self.counters["dropped_events_total"]

    @property
    def expired_events_total(self) -> int:
        """Events dropped because they were older than ``max_age_days``."""
        return self.counters["expired_events_total"]

    @property
    def rejected_batches(self) -> int:
        """Batches the collector refused for good (moved to the quarantine)."""
        return self.counters["rejected_batches_total"]


class Spool:
    """The durable event queue of one agent (thread-safe; one writer connection).

    ``clock`` (wall-clock seconds) and ``monotonic`` (the boot clock, :func:`boot_clock`) are
    injected so tests control expiry and ages; ``boot_id`` names the current boot (the
    platform's boot id). Without one, boot-clock readings are trusted only for events this
    instance spooled itself. The uploader thread and the sampling thread share one instance.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_days: float = 30.0,
        quarantine_max_bytes: int = _QUARANTINE_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = boot_clock,
        boot_id: str | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.quarantine_max_bytes = quarantine_max_bytes
        self.max_age_s = max_age_days * 86400
        self._clock = clock
        self._monotonic = monotonic
        self.boot_id = f"boot:{boot_id}" if boot_id else f"process:{uuid.uuid4()}"
        """The boot key stored with each event (its boot-clock reading is valid in it)."""
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a spool written by an earlier build lacks (in one transaction, so
        two processes opening an old file at once cannot both add a column)."""
        with self._tx() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            for column, statement in _MIGRATIONS:
                if column not in columns:
                    db.execute(statement)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _now_iso(self) -> str:
        return utc_iso(datetime.fromtimestamp(self._clock(), UTC))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection, key: str, by: int = 1) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + ?",
            (key, str(by), by),
        )

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def append(
        self, events: Iterable[Mapping[str, Any]], *, marks: Mapping[str, str] | None = None
    ) -> int:
        """Store events durably in one transaction, then enforce the bounds; returns the count.

        ``marks`` are small persistent values (e.g. "this boot was reported") written in the
        same transaction, so a crash can neither lose the events nor report them twice.
        ``events_appended_total`` grows in that transaction too.
        """
        now = self._clock()
        mono = self._monotonic()
        rows = []
        for event in events:
            body = dumps(event)
            kind = str(event["type"])
            rows.append(
                (
                    str(event["event_id"]),
                    kind,
                    int(kind in CRITICAL_TYPES),
                    int(kind in BULK_TYPES),
                    now,
                    body,
                    len(body.encode()),
                    mono,
                    self.boot_id,
                )
            )
        if not rows and not marks:
            return 0
        with self._tx() as db:
            if rows:
                db.executemany(
                    "INSERT INTO events "
                    "(event_id, type, critical, bulk, created, body, size, mono, boot) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._bump(db, "events_appended_total", len(rows))
            for key, value in (marks or {}).items():
                self._set(db, f"mark:{key}", value)
            if rows:
                self._enforce_bounds(db, now)
        return len(rows)

    def mark(self, key: str) -> str | None:
        """A value stored with ``append(..., marks=...)``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"mark:{key}",))
            found = row.fetchone()
        return None if found is None else str(found[0])

    def _enforce_bounds(self, db: sqlite3.Connection, now: float) -> None:
        expired = db.execute(
            "DELETE FROM events WHERE batch_id IS NULL AND created < ?", (now - self.max_age_s,)
        ).rowcount
        if expired:
            self._bump(db, "expired_events_total", expired)
        total = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM events").fetchone()[0])
        if total <= self.max_bytes:
            return
        excess = total - self.max_bytes
        victims: list[int] = []
        freed = 0
        # Oldest bulk samples first, then other non-critical events; never critical ones,
        # never events already in a formed batch (it must be re-sent identical).
        for seq, size in db.execute(
            "SELECT seq, size FROM events WHERE critical = 0 AND batch_id IS NULL "
            "ORDER BY bulk DESC, seq"
        ):
            if freed >= excess:
                break
            victims.append(seq)
            freed += size
        if victims:
            db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in victims])
            self._bump(db, "dropped_events_total", len(victims))

    def pending(self) -> Pending:
        """What waits to be sent (the uploader's flush decision reads this)."""
        with self._lock:
            count, size, loose, oldest, oldest_mono = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), "
                "COALESCE(SUM(CASE WHEN batch_id IS NULL THEN size ELSE 0 END), 0), "
                "MIN(created), MIN(CASE WHEN boot = ? THEN mono END) FROM events",
                (self.boot_id,),
            ).fetchone()
            now, mono = self._clock(), self._monotonic()
        age: float | None = None
        if oldest is not None:
            age = now - oldest if now >= oldest else float("inf")
        if oldest_mono is not None:
            age = max(age or 0.0, mono - oldest_mono)
        return Pending(int(count), int(size), int(loose), oldest, age)

    def _batch(self, db: sqlite3.Connection, batch_id: str, attempts: int) -> SpoolBatch:
        mono = self._monotonic()
        rows = db.execute(
            "SELECT body, mono, boot FROM events WHERE batch_id = ? ORDER BY seq", (batch_id,)
        ).fetchall()
        ages = tuple(
            max(0.0, mono - r[1]) if r[1] is not None and r[2] == self.boot_id else None
            for r in rows
        )
        return SpoolBatch(batch_id, tuple(r[0] for r in rows), attempts, ages)

    def begin_batch(self, max_events: int, max_bytes: int) -> SpoolBatch | None:
        """The next batch to send, or None when the spool is empty.

        The oldest batch already formed but not acknowledged comes first (a retry, also after
        a crash, re-sends the same ``batch_id`` with the same events); otherwise the oldest
        unassigned events (at most ``max_events``, at most ``max_bytes`` of JSON but always
        at least one event) are assigned to a new batch id in one transaction.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT batch_id, attempts FROM batches ORDER BY created, rowid LIMIT 1"
            ).fetchone()
            if row is not None:
                formed = self._batch(db, row[0], int(row[1]))
                if formed.events_json:
                    return formed
                db.execute("DELETE FROM batches WHERE batch_id = ?", (row[0],))
            chosen: list[int] = []
            size = 0
            for seq, event_size in db.execute(
                "SELECT seq, size FROM events WHERE batch_id IS NULL ORDER BY seq LIMIT ?",
                (max_events,),
            ):
                if chosen and size + event_size > max_bytes:
                    break
                chosen.append(seq)
                size += event_size
            if not chosen:
                return None
            batch_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO batches (batch_id, created) VALUES (?, ?)", (batch_id, self._clock())
            )
            db.executemany(
                "UPDATE events SET batch_id = ? WHERE seq = ?", [(batch_id, s) for s in chosen]
            )
            return self._batch(db, batch_id, 0)

    def accept(self, batch_id: str) -> None:
        """The collector stored (or already had) the batch: delete its events, count it."""
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            self._bump(db, "uploads_ok_total")
            self._set(db, "last_upload_at", self._now_iso())

    def keep(self, batch_id: str, error: str) -> None:
        """The upload failed in a way worth retrying: keep the batch as it is, count it."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?",
                (error[:500], batch_id),
            )
            self._bump(db, "upload_failures_total")
            self._set(db, "last_error", error[:500])
            self._set(db, "last_error_at", self._now_iso())

    def note_error(self, error: str) -> None:
        """Record an error that is not tied to a batch (e.g. the config fetch failed)."""
        with self._tx() as db:
            self._set(db, "last_error", error[:500])
            self._set(db, "last_error_at", self._now_iso())

    def reject(self, batch_id: str, reason: str) -> None:
        """The collector refused the batch for good: move it to the quarantine.

        Quarantined batches are kept (with the reason) and counted, never silently deleted;
        the quarantine is capped, and a batch evicted by that cap is counted too.
        """
        with self._tx() as db:
            bodies = [
                b[0]
                for b in db.execute(
                    "SELECT body FROM events WHERE batch_id = ? ORDER BY seq", (batch_id,)
                )
            ]
            db.execute(
                "INSERT OR REPLACE INTO quarantine (batch_id, rejected_at, reason, events, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, self._clock(), reason[:2000], len(bodies), "[" + ",".join(bodies) + "]"),
            )
            db.execute("DELETE FROM events WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            self._bump(db, "rejected_batches_total")
            self._bump(db, "rejected_events_total", len(bodies))
            self._set(db, "last_error", f"batch rejected: {reason}"[:500])
            self._set(db, "last_error_at", self._now_iso())
            while True:
                (size, count) = db.execute(
                    "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM quarantine"
                ).fetchone()
                if int(size) <= self.quarantine_max_bytes or int(count) <= 1:
                    break
                db.execute(
                    "DELETE FROM quarantine WHERE batch_id = "
                    "(SELECT batch_id FROM quarantine ORDER BY rejected_at, rowid LIMIT 1)"
                )
                self._bump(db, "quarantine_evicted_batches_total")

    def quarantined(self) -> list[tuple[str, str, int]]:
        """(batch id, reason, event count) of each quarantined batch, oldest first."""
        with self._lock:
            return [
                (r[0], r[1], int(r[2]))
                for r in self._db.execute(
                    "SELECT batch_id, reason, events FROM quarantine ORDER BY rejected_at, rowid"
                )
            ]

    def stats(self) -> SpoolStats:
        """Current depth and counters."""
        with self._lock:
            return _read_stats(self._db)


def _read_stats(db: sqlite3.Connection) -> SpoolStats:
    count, size, oldest = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM events"
    ).fetchone()
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key NOT LIKE 'mark:%'").fetchall())
    return SpoolStats(
        events=int(count),
        bytes=int(size),
        oldest_created=oldest,
        counters=MappingProxyType({k: int(meta.get(k, 0)) for k in COUNTERS}),
        last_upload_at=meta.get("last_upload_at"),
        last_error=meta.get("last_error"),
        last_error_at=meta.get("last_error_at"),
    )


def read_stats(path: Path) -> SpoolStats:
    """The stats of a spool file, opened read-only (safe while the agent writes: WAL)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return _read_stats(db)
    finally:
        db.close()


def read_marks(path: Path) -> dict[str, str]:
    """Every persistent mark of a spool file (read-only), for ``agent status``."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT key, value FROM meta WHERE key LIKE 'mark:%'").fetchall()
    finally:
        db.close()
    return {key.removeprefix("mark:"): value for key, value in rows}
