"""``POST /api/v1/ingest``: thin HTTP layer over :mod:`collector.ingest.service`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from collector.auth import CurrentDevice
from collector.db import SessionDep
from collector.devices.models import Device
from collector.errors import ApiError, error_body
from collector.ingest.body import decode_body, read_limited
from collector.ingest.schemas import wire_json_schema
from collector.ingest.service import IngestResult, ingest_batch
from collector.metrics import CollectorMetrics
from collector.settings import Settings

__all__ = ["IngestOut", "router"]

router = APIRouter(prefix="/api/v1", tags=["ingest"])


class IngestOut(BaseModel):
    """The answer to an accepted or replayed batch."""

    batch_id: str
    accepted: int
    duplicate: bool


_ERRORS = {
    code: {
        "description": text,
        "content": {"application/json": {"example": error_body("code", text)}},
    }
    for code, text in {
        400: "malformed JSON or gzip",
        401: "missing, unknown, expired or revoked device token",
        403: "the batch names another device",
        409: "batch id reused with different events",
        413: "body (compressed or inflated) over the limit",
        415: "unsupported Content-Encoding",
        422: "not valid wire v1 (the field is named)",
    }.items()
}


@router.post(
    "/ingest",
    response_model=IngestOut,
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": wire_json_schema()}},
        }
    },
)
async def ingest(
    request: Request,
    device: CurrentDevice,
    session: SessionDep,
) -> IngestOut:
    """Store one batch of a device's events whole or not at all; a replay stores nothing.

    The body is JSON, optionally with ``Content-Encoding: gzip``.
    """
    # The token lookup's session ends here, before any wait: a request must not hold a
    # pooled connection while it waits for its body or for a thread, or with more
    # requests in flight than connections they deadlock (pool timeouts, 500s). Hence
    # also no sync dependencies after the device (each would wait for a thread). The
    # device stays usable detached; the store step uses a session of its own.
    session.close()
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    settings: Settings = request.app.state.settings
    metrics: CollectorMetrics = request.app.state.metrics
    try:
        raw = await read_limited(
            request.stream(), request.headers.get("content-length"), settings.max_body_bytes
        )
        body = decode_body(
            raw, request.headers.get("content-encoding"), settings.max_decompressed_bytes
        )
        result = await run_in_threadpool(_ingest, factory, device, body, settings)
    except ApiError as exc:
        metrics.batches.labels(outcome=exc.code).inc()
        raise
    metrics.batches.labels(outcome="duplicate" if result.duplicate else "stored").inc()
    metrics.events.inc(result.accepted)
    return IngestOut(**result.as_json())  # type: ignore[arg-type]


def _ingest(
    factory: sessionmaker[Session], device: Device, body: bytes, settings: Settings
) -> IngestResult:
    with factory() as session:
        attached = session.merge(device, load=False)
        return ingest_batch(session, attached, body, settings)
