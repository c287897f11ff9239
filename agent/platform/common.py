"""What every OS backend returns: harvests of OS log records, hung apps, stable event ids.

Each backend module (``linux.py``, ``windows.py``, ``darwin.py``) exposes the same functions;
the facade (:mod:`agent.platform`) calls the running OS's module, and the samplers never see
which OS they run on. The functions that read OS logs take the opaque ``cursor`` their
previous call returned (``None`` the first time, when they read records newer than
``since``) and return a :class:`Harvest`. The sampler stores the new cursor with the events in
one spool transaction, so a record is reported once even across a kill -9; and because event
ids come from :func:`stable_event_id` (a hash of the source record), a record read twice
anyway is stored once by the collector.

This module is standard library only, so any backend can be imported and tested on any OS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

__all__ = [
    "EVENT_ID_NAMESPACE",
    "Harvest",
    "HungApp",
    "app_name_from_path",
    "load_cursor",
    "pseudonymise",
    "stable_event_id",
]

EVENT_ID_NAMESPACE = uuid.UUID("5b1f6f0e-3d2a-4c55-9a7e-6d0c2f9b1e44")
"""UUIDv5 namespace of event ids derived from OS records."""


def stable_event_id(source: str, key: str) -> uuid.UUID:
    """The event id of the OS record ``key`` of ``source`` (e.g. a journal cursor, an
    ``EventRecordID`` with its log name, a report file name): the same record always gets
    the same id, so re-reading it never doubles it at the collector."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\x00{key}")


@dataclass(frozen=True)
class Harvest:
    """What one read of an OS log produced.

    ``events`` are complete wire events (``event_id``, ``ts`` as an aware UTC datetime,
    ``type`` and the type's fields). A logon event may carry the private key ``_user`` (the
    account name); the logon sampler replaces it with a keyed ``user_hash`` or drops it, so
    no name reaches the spool. ``cursor`` is where the next read starts (``None``: keep the
    previous one). ``source`` names what was read (``journald``, ``kmsg``,
    ``wevtutil:Application``, ``DiagnosticReports``...); ``degraded`` says why a better
    source was not available ("no journald: reading /dev/kmsg"), shown by ``agent status``.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None
    source: str = "none"
    degraded: str | None = None


@dataclass(frozen=True)
class HungApp:
    """An application seen not responding at one sample.

    ``reason``: ``window_not_responding`` (Windows ``IsHungAppWindow``), ``d_state`` (Linux: in
    uninterruptible sleep), ``spinning`` (macOS, where observable).
    """

    pid: int
    app_name: str
    reason: Literal["window_not_responding", "d_state", "spinning"]
    app_version: str | None = None


def app_name_from_path(path: str) -> str:
    """The executable's file name from a Windows or POSIX path (never the directories, which
    may hold a user name); at most 256 characters."""
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return (name or path)[:256]


def pseudonymise(key: bytes, value: str) -> str:
    """A keyed hash (HMAC-SHA-256, hex, 32 chars) of ``value``: stable per tenant key, so the
    same user is recognisable across devices of one tenant and nowhere else."""
    return hmac.new(key, value.casefold().encode(), hashlib.sha256).hexdigest()[:32]


def load_cursor(cursor: str | None) -> dict[str, Any]:
    """A JSON-object cursor as a dict; empty (start afresh) when absent or unreadable, so a
    damaged cursor costs a re-read (stable event ids keep it from doubling), never a crash."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
