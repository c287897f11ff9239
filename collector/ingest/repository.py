"""SQL for ingest: the idempotency record and bulk event inserts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from collector.ingest.models import Event, IngestBatch

__all__ = ["IngestRepository"]


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
