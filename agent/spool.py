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
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.jsonutil import dumps

__all__ = ["CRITICAL_TYPES", "Spool", "SpoolBatch", "SpoolStats"]

CRITICAL_TYPES = frozenset(
    {"app_crash", "system_crash", "survey_response", "software_change", "boot", "logon"}
)
"""Event types the spool never drops to make room."""

_COUNTERS = (
    "events_appended_total",
    "dropped_events_total",
    "expired_events_total",
    "rejected_batches_total",
    "rejected_events_total",
    "uploads_ok_total",
    "upload_failures_total",
)
_QUARANTINE_MAX_BYTES = 8 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    critical INTEGER NOT NULL,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    batch_id TEXT
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


@dataclass(frozen=True)
class SpoolBatch:
    """A batch ready to send: its id and its events as JSON texts (in order)."""

    batch_id: str
    events_json: tuple[str, ...]
    attempts: int

    def __len__(self) -> int:
        return len(self.events_json)


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


class Spool:
    """The durable event queue of one agent (thread-safe; one writer connection)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_days: float = 30.0,
        clock: Any = time.time,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_days * 86400
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

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

    def append(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Store events durably (one transaction), then enforce the bounds; returns the count."""
        now = self._clock()
        rows = []
        for event in events:
            body = dumps(event)
            rows.append(
                (
                    str(event["event_id"]),
                    str(event["type"]),
                    int(event["type"] in CRITICAL_TYPES),
                    now,
                    body,
                    len(body.encode()),
                )
            )
        if not rows:
            return 0
        with self._tx() as db:
            db.executemany(
                "INSERT INTO events (event_id, type, critical, created, body, size) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._bump(db, "events_appended_total", len(rows))
            self._enforce_bounds(db, now)
        return len(rows)

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
        for seq, size in db.execute(
            "SELECT seq, size FROM events WHERE critical = 0 AND batch_id IS NULL ORDER BY seq"
        ):
            if freed >= excess:
                break
            victims.append(seq)
            freed += size
        if victims:
            db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in victims])
            self._bump(db, "dropped_events_total", len(victims))

    def pending(self) -> tuple[int, float | None]:
        """How many events wait (in a batch or not), and when the oldest was appended."""
        with self._lock:
            count, oldest = self._db.execute("SELECT COUNT(*), MIN(created) FROM events").fetchone()
        return int(count), oldest

    def begin_batch(self, max_events: int, max_bytes: int) -> SpoolBatch | None:
        """The next batch to send: an unacknowledged one first, else a new one (or None)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT batch_id, attempts FROM batches ORDER BY created, rowid LIMIT 1"
            ).fetchone()
            if row is not None:
                bodies = db.execute(
                    "SELECT body FROM events WHERE batch_id = ? ORDER BY seq", (row[0],)
                ).fetchall()
                if bodies:
                    return SpoolBatch(row[0], tuple(b[0] for b in bodies), int(row[1]))
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
            bodies = db.execute(
                "SELECT body FROM events WHERE batch_id = ? ORDER BY seq", (batch_id,)
            ).fetchall()
            return SpoolBatch(batch_id, tuple(b[0] for b in bodies), 0)

    def accept(self, batch_id: str, uploaded_at: str) -> None:
        """The collector stored (or already had) the batch: forget it."""
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            self._bump(db, "uploads_ok_total")
            self._set(db, "last_upload_at", uploaded_at)

    def keep(self, batch_id: str, error: str, at: str) -> None:
        """The upload failed in a way worth retrying: keep the batch as it is."""
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?",
                (error[:500], batch_id),
            )
            self._bump(db, "upload_failures_total")
            self._set(db, "last_error", error[:500])
            self._set(db, "last_error_at", at)

    def note_error(self, error: str, at: str) -> None:
        """Record an error that is not tied to a batch (e.g. config fetch failed)."""
        with self._tx() as db:
            self._set(db, "last_error", error[:500])
            self._set(db, "last_error_at", at)

    def reject(self, batch_id: str, reason: str, at: str) -> None:
        """The collector refused the batch for good: move it to the quarantine (kept, counted)."""
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
            self._set(db, "last_error_at", at)
            while (
                int(
                    db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM quarantine").fetchone()[
                        0
                    ]
                )
                > _QUARANTINE_MAX_BYTES
            ):
                db.execute(
                    "DELETE FROM quarantine WHERE batch_id = "
                    "(SELECT batch_id FROM quarantine ORDER BY rejected_at LIMIT 1)"
                )

    def quarantined(self) -> list[tuple[str, str, int]]:
        """(batch id, reason, event count) of each quarantined batch, oldest first."""
        with self._lock:
            return [
                (r[0], r[1], int(r[2]))
                for r in self._db.execute(
                    "SELECT batch_id, reason, events FROM quarantine ORDER BY rejected_at"
                )
            ]

    def stats(self) -> SpoolStats:
        """Current depth and counters."""
        with self._lock:
            count, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created) FROM events"
            ).fetchone()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return SpoolStats(
            events=int(count),
            bytes=int(size),
            oldest_created=oldest,
            counters={k: int(meta.get(k, 0)) for k in _COUNTERS},
            last_upload_at=meta.get("last_upload_at"),
            last_error=meta.get("last_error"),
            last_error_at=meta.get("last_error_at"),
        )
