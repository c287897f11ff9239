"""Ingest use case: validate a batch, then store it whole or not at all, exactly once.

Rules (documented in docs/wire-protocol.md, "Ingest rules"):
- the body is JSON (optionally gzip), validated strictly against wire v1;
- the batch's ``device_id`` must be the authenticated device's;
- timestamps must carry a UTC offset; event ids are unique within a batch;
- device clock offset: when ``received_at - sent_at`` exceeds ``max_clock_offset_s``, every
  event timestamp is shifted by that offset (recorded on the batch as ``clock_offset_s``);
- after that, an event later than ``received_at + max_future_skew_s`` or older than
  ``max_event_age_days`` rejects the whole batch with 422 naming the event;
- a replayed ``batch_id`` (same device, same event ids) answers ``duplicate: true`` and
  stores nothing; the same ``batch_id`` with other events is a 409;
- everything is written in one transaction.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.devices.models import Device
from collector.errors import BadRequest, Conflict, Forbidden, UnprocessableEntity, loc_to_field
from collector.ingest.models import IngestBatch
from collector.ingest.repository import IngestRepository
from collector.ingest.schemas import BATCH
from collector.settings import Settings
from dexscope import wire

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the thread lock alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["IngestResult", "ingest_batch", "parse_batch"]

_WRITER_LOCK = threading.Lock()
"""SQLite: one ingest writer per process (threads queue here, not in SQLite's busy loop)."""


@contextmanager
def _single_writer(session: Session) -> Iterator[None]:
    """On SQLite, hold the ingest write lock: in-process, then across worker processes.

    SQLite has one writer at a time; concurrent writers otherwise meet in its busy
    handler, which polls with growing sleeps (tail latency of seconds). A thread lock
    queues this process's writers; an exclusive ``flock`` on ``<database>-ingest.lock``
    queues the other workers' (woken as soon as it is released). ``busy_timeout`` still
    covers other writers (jobs, the dashboard). PostgreSQL needs none of this.
    """
    bind = session.get_bind()
    url = bind.engine.url
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with _WRITER_LOCK:
        fd = os.open(f"{os.path.abspath(database)}-ingest.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


@dataclass(frozen=True)
class IngestResult:
    """What happened to one batch."""

    batch_id: str
    accepted: int
    duplicate: bool

    def as_json(self) -> dict[str, object]:
        """The response body of ``POST /api/v1/ingest``."""
        return {"batch_id": self.batch_id, "accepted": self.accepted, "duplicate": self.duplicate}


def parse_batch(body: bytes) -> wire.Batch:
    """Validate an ingest body; 400 for unreadable JSON, 422 naming the first bad field."""
    try:
        # strict: nothing is coerced (a number is not a timestamp, "12" is not a number)
        return BATCH.validate_json(body, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            raise BadRequest(f"malformed JSON: {first['msg']}", code="malformed_json") from exc
        field = loc_to_field(_without_tags(first["loc"])) or None
        if first["type"] == "union_tag_invalid":
            tag = (first.get("ctx") or {}).get("tag")
            raise UnprocessableEntity(
                f"{field}.type: unknown event type {tag}; wire v1 knows "
                + ", ".join(wire.EVENT_TYPES),
                code="unknown_event_type",
                field=f"{field}.type",
            ) from exc
        if first["type"] == "union_tag_not_found":
            raise UnprocessableEntity(
                f"{field}: every event needs a 'type'", field=f"{field}.type"
            ) from exc
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise UnprocessableEntity(f"{field}: {first['msg']}{more}", field=field) from exc


def _without_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the discriminator tag pydantic puts in error locations (events[3].boot.x)."""
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (i > 0 and isinstance(loc[i - 1], int) and part in wire.EVENT_TYPES)
    )


def _require_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise UnprocessableEntity(
            f"{field}: timestamp must carry a UTC offset (e.g. 2026-11-22T10:00:00Z)",
            code="naive_timestamp",
            field=field,
        )


def _check_times(batch: wire.Batch, received_at: datetime, settings: Settings) -> float:
    """Validate timestamps; returns the clock offset (seconds) to add to event times."""
    _require_aware(batch["sent_at"], "sent_at")
    events = batch["events"]
    for i, event in enumerate(events):
        for key, value in event.items():
            # utcoffset() is None for naive datetimes (and for the rare tzinfo without one)
            if value.__class__ is datetime and value.utcoffset() is None:
                _require_aware(value, f"events[{i}].{key}")
    offset = (received_at - batch["sent_at"]).total_seconds()
    if abs(offset) <= settings.max_clock_offset_s:
        offset = 0.0
    shift = timedelta(seconds=offset)
    # compare raw event times with bounds shifted the other way: one subtraction per batch
    latest = received_at + timedelta(seconds=settings.max_future_skew_s) - shift
    oldest = received_at - timedelta(days=settings.max_event_age_days) - shift
    for i, event in enumerate(events):
        raw_ts = event["ts"]
        if oldest <= raw_ts <= latest:
            continue
        ts = raw_ts + shift
        if raw_ts > latest:
            raise UnprocessableEntity(
                f"events[{i}].ts: {ts.isoformat()} is more than "
                f"{settings.max_future_skew_s:.0f} s in the future",
                code="event_in_future",
                field=f"events[{i}].ts",
            )
        raise UnprocessableEntity(
            f"events[{i}].ts: {ts.isoformat()} is older than {settings.max_event_age_days:g} days",
            code="event_too_old",
            field=f"events[{i}].ts",
        )
    return offset


def _content_hash(batch: wire.Batch) -> str:
    ids = sorted(str(e["event_id"]) for e in batch["events"])
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def ingest_batch(session: Session, device: Device, body: bytes, settings: Settings) -> IngestResult:
    """Validate and store one batch from ``device`` (see the module rules); commits."""
    batch = parse_batch(body)
    if batch["device_id"] != device.id:
        raise Forbidden(
            "this device token may only send batches for its own device "
            f"({device.id}), not {batch['device_id']}",
            code="device_mismatch",
            field="device_id",
        )
    ids = [event["event_id"] for event in batch["events"]]
    if len(set(ids)) != len(ids):
        seen: dict[object, int] = {}
        for i, key in enumerate(ids):
            if key in seen:
                raise UnprocessableEntity(
                    f"events[{i}].event_id duplicates events[{seen[key]}].event_id",
                    code="duplicate_event_id",
                    field=f"events[{i}].event_id",
                )
            seen[key] = i
    received_at = utcnow()
    offset = _check_times(batch, received_at, settings)
    digest = _content_hash(batch)
    repo = IngestRepository(session)
    batch_id = str(batch["batch_id"])

    existing = repo.find_batch(device.id, batch["batch_id"])
    if existing is not None:
        return _replay(existing, digest, batch_id)

    try:
        with _single_writer(session):
            record = repo.add_batch(
                IngestBatch(
                    tenant_id=device.tenant_id,
                    device_id=device.id,
                    batch_id=batch["batch_id"],
                    content_sha256=digest,
                    event_count=len(batch["events"]),
                    agent_version=batch["agent_version"],
                    sent_at=batch["sent_at"],
                    received_at=received_at,
                    clock_offset_s=offset,
                )
            )
            accepted = repo.insert_batch_events(
                tenant_id=device.tenant_id,
                device_id=device.id,
                batch_pk=record.id,
                events=batch["events"],
                shift_s=offset,
                received_at=received_at,
            )
            device.last_seen_at = received_at
            device.agent_version = batch["agent_version"]
            session.commit()
    except IntegrityError:
        session.rollback()
        existing = repo.find_batch(device.id, batch["batch_id"])
        if existing is None:
            raise
        return _replay(existing, digest, batch_id)
    return IngestResult(batch_id=batch_id, accepted=accepted, duplicate=False)


def _replay(existing: IngestBatch, digest: str, batch_id: str) -> IngestResult:
    if existing.content_sha256 != digest:
        raise Conflict(
            f"batch {batch_id} was already stored with different events; "
            "a batch id must never be reused",
            code="batch_id_reused",
            field="batch_id",
        )
    return IngestResult(batch_id=batch_id, accepted=0, duplicate=True)
