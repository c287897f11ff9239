"""API shapes of tickets: the import request (JSON or CSV rows), results and listings.

Validation is strict (no type coercion, unknown keys refused): a ticket is
``{external_id, opened_at, device_hostname?, user?, category, summary, extra?}`` with
``opened_at`` an ISO 8601 time with a UTC offset. CSV rows are validated by the same
model, every cell a string (an empty optional cell is an absent field).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

__all__ = [
    "CSV_COLUMNS",
    "MAX_EXTRA_KEYS",
    "MAX_TICKETS",
    "REQUIRED_COLUMNS",
    "TICKET_ENVELOPE",
    "TICKET_LIST",
    "ImportResult",
    "TicketIn",
    "TicketList",
    "TicketOut",
    "TicketsEnvelope",
]

MAX_TICKETS: Final = 10_000
"""Most tickets in one request (larger exports are sent in several)."""
MAX_EXTRA_KEYS: Final = 20
"""Most extra fields (or CSV columns beyond the contract's) kept per ticket."""
CSV_COLUMNS: Final = (
    "external_id",
    "opened_at",
    "device_hostname",
    "user",
    "category",
    "summary",
)
"""The contract's columns (the simulator's ``tickets.csv`` writes these first)."""
REQUIRED_COLUMNS: Final = ("external_id", "opened_at", "category", "summary")
"""Columns a CSV import must have."""

_STRICT = ConfigDict(extra="forbid", strict=True)


Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text128 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Text253 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
Text256 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Text1000 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


ExtraValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None


class TicketIn(BaseModel):
    """One ticket as an ITSM exports it."""

    model_config = _STRICT

    external_id: Text128
    """The ITSM's ticket number; unique in the tenant (re-sending it updates the ticket)."""
    opened_at: AwareDatetime
    device_hostname: Text253 | None = None
    user: Text256 | None = None
    """The caller's account name: personal data, stored only as a keyed hash."""
    category: Text100
    summary: Text1000
    extra: (
        Annotated[
            dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], ExtraValue],
            Field(max_length=MAX_EXTRA_KEYS),
        ]
        | None
    ) = None
    """Anything else worth keeping (CSV: the columns beyond the contract's)."""


class TicketsEnvelope(BaseModel):
    """The object form of ``POST /api/v1/tickets``: ``{tenant_id?, tickets: [...]}``."""

    model_config = _STRICT

    tenant_id: uuid.UUID | None = None
    tickets: Annotated[list[TicketIn], Field(max_length=MAX_TICKETS)]


TICKET_LIST: TypeAdapter[list[TicketIn]] = TypeAdapter(
    Annotated[list[TicketIn], Field(max_length=MAX_TICKETS)]
)
"""Validator of the list form of the JSON import (and of CSV rows)."""
TICKET_ENVELOPE: TypeAdapter[TicketsEnvelope] = TypeAdapter(TicketsEnvelope)
"""Validator of the object form of the JSON import."""


class ImportResult(BaseModel):
    """What an import did: every ticket is either created or updated."""

    tenant_id: uuid.UUID
    received: int
    created: int
    updated: int
    matched_devices: int
    """Tickets of this import matched to a device of the tenant."""
    matched_alerts: int
    """Tickets of this import matched to an alert."""


class TicketOut(BaseModel):
    """A stored ticket. ``user_hash`` is the keyed hash of the user; the name is not kept."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    external_id: str
    opened_at: datetime
    device_hostname: str | None
    user_hash: str | None
    category: str
    summary: str
    extra: dict[str, Any] | None
    device_id: uuid.UUID | None
    alert_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class TicketList(BaseModel):
    """One page of tickets, oldest first."""

    items: list[TicketOut]
    total: int
    limit: int
    offset: int
