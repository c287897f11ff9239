"""SQL for ingest: the idempotency record and bulk event inserts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json
from sqlalchemy import ColumnElement, Insert, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from collector.db import chunks
from collector.ingest.models import Event, IngestBatch

__all__ = ["IngestRepository", "new_since"]

_ENVELOPE = frozenset({"event_id", "type", "ts"})
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"

_PG_INSERT_EVENTS = """
INSERT INTO events (tenant_id, device_id, batch_pk, event_id, type, ts, received_at, data)
SELECT %s, %s, %s, (e->>'event_id')::uuid, e->>'type',
       (e->>'ts')::timestamptz + make_interval(secs => %s), %s, e - 'event_id' - 'type' - 'ts'
FROM jsonb_array_elements(%s::jsonb) AS e
ON CONFLICT (device_id, event_id) DO NOTHING
"""

_SQLITE_INSERT_EVENTS = (
    "INSERT INTO events (tenant_id, device_id, batch_pk, event_id, type, ts, received_at, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, event_id) DO NOTHING"
)


def new_since(
    session: Session,
    tenant_id: uuid.UUID,
    where: Sequence[ColumnElement[bool]],
    *,
    received_after: datetime | None,
    ts_after: datetime | None,
) -> list[list[ColumnElement[bool]]]:
    """WHERE clauses, one per query, for the events matching ``where`` that are new since a
    run that read everything received up to ``received_after`` and timestamped up to
    ``ts_after``: timestamped after ``ts_after``, or in a batch received after
    ``received_after`` (late data). With neither, every event matching ``where``.

    The two kinds of new are separate queries, each on its own index (time, and the batch),
    because one query with ``OR`` walks every stored event. A caller may see an event from
    both queries and must count it once (by primary key).
    """
    if received_after is None and ts_after is None:
        return [list(where)]
    clauses = []
    if ts_after is not None:
        clauses.append([*where, Event.ts > ts_after])
    if received_after is not None:
        batches = list(
            session.scalars(
                select(IngestBatch.id).where(
                    IngestBatch.tenant_id == tenant_id, IngestBatch.received_at > received_after
                )
            )
        )
        clauses += [[*where, Event.batch_pk.in_(chunk)] for chunk in chunks(batches)]
    return clauses


class IngestRepository:
    """Reads and writes ingest batches and raw events."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_batch(self, device_id: uuid.UUID, batch_id: uuid.UUID) -> IngestBatch | None:
        """The stored batch with this id from this device, if any."""
        return self.session.scalar(
            select(IngestBatch).where(
                IngestBatch.device_id == device_id, IngestBatch.batch_id == batch_id
            )
        )

    def add_batch(self, batch: IngestBatch) -> IngestBatch:
        """Stage the idempotency record (raises IntegrityError on a concurrent replay)."""
        self.session.add(batch)
        self.session.flush()
        return batch

    def insert_events(self, rows: list[dict[str, Any]]) -> int:
        """Bulk-insert events, skipping any (device_id, event_id) already stored.

        Returns how many rows were inserted.
        """
        if not rows:
            return 0
        stmt: Insert
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(Event).on_conflict_do_nothing(
                index_elements=["device_id", "event_id"]
            )
        elif dialect == "sqlite":
            stmt = sqlite.insert(Event).on_conflict_do_nothing(
                index_elements=["device_id", "event_id"]
            )
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise RuntimeError(f"unsupported database dialect {dialect}")
        result = self.session.execute(stmt.returning(Event.id), rows)
        return len(result.all())

    def insert_batch_events(
        self,
        *,
        tenant_id: uuid.UUID,
        device_id: uuid.UUID,
        batch_pk: int,
        events: Sequence[Any],
        shift_s: float,
        received_at: datetime,
    ) -> int:
        """Insert one validated batch's events in one statement, skipping stored ones.

        The hot path of ingest: no ORM, no per-parameter type processing. On PostgreSQL
        the events travel as one JSON array and the server splits them (envelope columns
        and ``data`` = the event without ``event_id``, ``type`` and ``ts``); on SQLite one
        ``executemany`` of pre-converted tuples (UUIDs as 32 hex digits, timestamps as
        naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``, exactly what the ORM column types
        write). ``ts`` is shifted by ``shift_s`` seconds (device clock offset) and stored
        in UTC. Returns how many rows were inserted.
        """
        if not events:
            return 0
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            result = conn.exec_driver_sql(
                _PG_INSERT_EVENTS,
                (tenant_id, device_id, batch_pk, shift_s, received_at, to_json(events).decode()),
            )
            return int(result.rowcount)
        if conn.dialect.name != "sqlite":  # pragma: no cover - only SQLite and PostgreSQL
            raise RuntimeError(f"unsupported database dialect {conn.dialect.name}")
        shift = timedelta(seconds=shift_s)
        fmt = _SQLITE_TS
        tenant, device = tenant_id.hex, device_id.hex
        received = received_at.astimezone(UTC).strftime(fmt)
        rows = [
            (
                tenant,
                device,
                batch_pk,
                e["event_id"].hex,
                e["type"],
                (e["ts"] + shift).astimezone(UTC).strftime(fmt),
                received,
                to_json({k: v for k, v in e.items() if k not in _ENVELOPE}).decode(),
            )
            for e in events
        ]
        result = conn.exec_driver_sql(_SQLITE_INSERT_EVENTS, rows)
        return int(result.rowcount)

    def delete_events_before(self, cutoff: datetime, *, chunk: int = 10_000) -> int:
        """Delete raw events with ``ts < cutoff`` in chunks; returns how many went."""
        return self._delete_in_chunks(Event, Event.ts, cutoff, chunk)

    def delete_batches_before(self, cutoff: datetime, *, chunk: int = 10_000) -> int:
        """Delete idempotency records received before ``cutoff`` (their events gone first)."""
        return self._delete_in_chunks(IngestBatch, IngestBatch.received_at, cutoff, chunk)

    def _delete_in_chunks(self, model: Any, column: Any, cutoff: datetime, chunk: int) -> int:
        total = 0
        while True:
            ids = list(self.session.scalars(select(model.id).where(column < cutoff).limit(chunk)))
            if not ids:
                return total
            if model is IngestBatch:
                self.session.execute(delete(Event).where(Event.batch_pk.in_(ids)))
            self.session.execute(delete(model).where(model.id.in_(ids)))
            self.session.commit()
            total += len(ids)
