"""JSON encoding of wire events without pydantic: UUIDs and datetimes as strings."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = ["dumps", "utc_iso"]


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a wire event")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``."""
    return json.dumps(value, default=_default, separators=(",", ":"), allow_nan=False)
