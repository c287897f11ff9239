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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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

__all__ = ["IngestResult", "ingest_batch", "parse_batch"]

_ENVELOPE = ("event_id", "type", "ts")


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
        return BATCH.validate_json(body)
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
    for i, event in enumerate(batch["events"]):
        for key, value in event.items():
            if isinstance(value, datetime):
                _require_aware(value, f"events[{i}].{key}")
    offset = (received_at - batch["sent_at"]).total_seconds()
    if abs(offset) <= settings.max_clock_offset_s:
        offset = 0.0
    shift = timedelta(seconds=offset)
    latest = received_at + timedelta(seconds=settings.max_future_skew_s)
    oldest = received_at - timedelta(days=settings.max_event_age_days)
    for i, event in enumerate(batch["events"]):
        ts = event["ts"] + shift
        if ts > latest:
            raise UnprocessableEntity(
                f"events[{i}].ts: {ts.isoformat()} is more than "
                f"{settings.max_future_skew_s:.0f} s in the future",
                code="event_in_future",
                field=f"events[{i}].ts",
            )
        if ts < oldest:
            raise UnprocessableEntity(
                f"events[{i}].ts: {ts.isoformat()} is older than "
                f"{settings.max_event_age_days:g} days",
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
    seen: dict[str, int] = {}
    for i, event in enumerate(batch["events"]):
        key = str(event["event_id"])
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

    dumped: list[dict[str, Any]] = BATCH.dump_python(batch, mode="json")["events"]
    shift = timedelta(seconds=offset)
    try:
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
        rows = [
            {
                "tenant_id": device.tenant_id,
                "device_id": device.id,
                "batch_pk": record.id,
                "event_id": event["event_id"],
                "type": event["type"],
                "ts": (event["ts"] + shift).astimezone(UTC),
                "received_at": received_at,
                "data": {k: v for k, v in raw.items() if k not in _ENVELOPE},
            }
            for event, raw in zip(batch["events"], dumped, strict=True)
        ]
        accepted = repo.insert_events(rows)
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
