"""API shapes for enrollment and the device inventory."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from dexscope.wire import EnrollRequest

__all__ = [
    "ENROLL_REQUEST",
    "DeviceDetail",
    "DeviceOut",
    "DevicePage",
    "EnrollOut",
    "EventOut",
    "EventPage",
    "EventTypeSummary",
]

ENROLL_REQUEST: TypeAdapter[EnrollRequest] = TypeAdapter(EnrollRequest)
"""Strict validator of the wire enrollment request."""


class EnrollOut(BaseModel):
    """Answer to a successful enrollment; the token is shown this once."""

    device_id: uuid.UUID
    device_token: str
    config: dict[str, Any]


class DeviceOut(BaseModel):
    """One device in the inventory."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    hostname: str
    os: str
    os_version: str
    agent_version: str
    persona: str | None
    """The assigned persona (see docs/personas.md)."""
    persona_source: str | None
    """Why: ``override``, ``rule``, ``hint`` or ``default``."""
    tags: dict[str, str]
    hardware: dict[str, Any]
    enrolled_at: datetime
    last_seen_at: datetime | None
    score: float | None
    """Current experience score 0-100; None until scoring has run for this device."""


class EventTypeSummary(BaseModel):
    """How many events of one type a device sent, and the newest one's time."""

    count: int
    last_ts: datetime


class DeviceDetail(DeviceOut):
    """A device with a summary of what it reported."""

    events: dict[str, EventTypeSummary]


class DevicePage(BaseModel):
    """A page of the inventory."""

    items: list[DeviceOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    """One raw event as stored (``ts`` corrected for the device's clock offset)."""

    id: int
    event_id: uuid.UUID
    type: str
    ts: datetime
    received_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    """A page of raw events; pass ``next_after`` as ``after`` for the next page."""

    items: list[EventOut]
    next_after: int | None
