"""Ticket use cases: import (JSON or CSV), matching to devices and alerts, listing.

Imports are validated strictly and stored whole or not at all, in the caller's tenant;
a ticket already stored with the same ``external_id`` is updated, never doubled. The user
name becomes a keyed hash at once (:func:`pseudonymise_user`). Matching:

- **device**: the tenant's device whose hostname equals the ticket's, ignoring case; else
  one whose hostname without its domain suffix equals the ticket's without its own (the
  most recently seen wins when several do);
- **alert**: the earliest-onset alert of the tenant whose affected devices include that
  device and with ``onset <= opened_at <= (resolved_at or now) + 1 day``.

Detection calls :func:`match_tickets_to_alerts` after it changes alerts, so matches follow
alerts as they open, grow and resolve.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.errors import Forbidden, UnprocessableEntity, loc_to_field
from collector.identity.roles import Identity, Role
from collector.tenants.repository import TenantRepository
from collector.tenants.service import target_tenant
from collector.tickets.models import Ticket
from collector.tickets.repository import AlertWindowRow, DeviceHostRow, TicketRepository
from collector.tickets.schemas import (
    CSV_COLUMNS,
    MAX_EXTRA_KEYS,
    MAX_TICKETS,
    REQUIRED_COLUMNS,
    TICKET_ENVELOPE,
    TICKET_LIST,
    ImportResult,
    TicketIn,
    TicketList,
    TicketOut,
)

__all__ = [
    "ALERT_GRACE",
    "MAX_FUTURE",
    "AlertMatcher",
    "HostnameIndex",
    "first_ticket_at",
    "import_tickets_csv",
    "import_tickets_json",
    "list_tickets",
    "match_tickets_to_alerts",
    "parse_csv",
    "parse_json",
    "pseudonymise_user",
    "short_hostname",
    "ticket_out",
    "tickets_for_alert",
]

ALERT_GRACE: Final = timedelta(days=1)
"""How long after an alert resolves (or after now, while open) a ticket still matches it."""
MAX_FUTURE: Final = timedelta(days=1)
"""A ticket opened further in the future than this is refused (a clock or format error)."""
_EDITORS: Final = frozenset({Role.ADMIN, Role.ANALYST})


def pseudonymise_user(pseudonym_key: str, user: str) -> str:
    """The keyed hash of a user name: HMAC-SHA-256 with the tenant's pseudonym key (hex),
    of the case-folded name, hex, 32 characters.

    The same function as the agent's (``agent.platform.common.pseudonymise``), so a
    ticket's ``user_hash`` equals the ``user_hash`` of that user's sign-ins in the tenant.
    """
    return hmac.new(
        bytes.fromhex(pseudonym_key), user.casefold().encode(), hashlib.sha256
    ).hexdigest()[:32]


def short_hostname(hostname: str) -> str:
    """The hostname, case-folded, without its domain suffix (``WS-1.corp.example`` → ``ws-1``)."""
    return hostname.strip().casefold().split(".", 1)[0]


class HostnameIndex:
    """The devices of one tenant by hostname, for matching tickets to devices."""

    def __init__(self, devices: Iterable[DeviceHostRow]) -> None:
        self._full: dict[str, tuple[Any, uuid.UUID]] = {}
        self._short: dict[str, tuple[Any, uuid.UUID]] = {}
        for device_id, hostname, last_seen_at, enrolled_at in devices:
            rank = (last_seen_at or enrolled_at, enrolled_at)
            for table, key in (
                (self._full, hostname.strip().casefold()),
                (self._short, short_hostname(hostname)),
            ):
                known = table.get(key)
                if known is None or rank > known[0]:
                    table[key] = (rank, device_id)

    def match(self, hostname: str | None) -> uuid.UUID | None:
        """The device a ticket's hostname names, if any (exact first, then short names)."""
        if not hostname:
            return None
        exact = self._full.get(hostname.strip().casefold())
        if exact is not None:
            return exact[1]
        short = self._short.get(short_hostname(hostname))
        return short[1] if short is not None else None


@dataclass(frozen=True)
class _Window:
    alert_id: uuid.UUID
    onset: datetime
    resolved_at: datetime | None
    devices: frozenset[str]


class AlertMatcher:
    """The alerts of one tenant, for matching tickets (device, opened_at) to an alert."""

    def __init__(self, alerts: Iterable[AlertWindowRow], now: datetime) -> None:
        self.now = now
        self._windows = [
            _Window(
                alert_id,
                onset,
                resolved_at,
                frozenset(devices) | ({scope_key} if scope == "device" else set()),
            )
            for alert_id, onset, resolved_at, devices, scope, scope_key in alerts
        ]

    @property
    def earliest_onset(self) -> datetime | None:
        """The earliest onset of any alert (no ticket opened before it can match)."""
        return min((w.onset for w in self._windows), default=None)

    def match(self, device_id: uuid.UUID | None, opened_at: datetime) -> uuid.UUID | None:
        """The earliest-onset alert covering the device at ``opened_at``, if any."""
        if device_id is None:
            return None
        key = str(device_id)
        for window in self._windows:  # earliest onset first
            end = (window.resolved_at or self.now) + ALERT_GRACE
            if key in window.devices and window.onset <= opened_at <= end:
                return window.alert_id
        return None


# --- parsing ------------------------------------------------------------------------------


def _row_field(loc: Sequence[int | str]) -> str:
    parts = list(loc)
    if parts and parts[0] == "tickets":
        parts = parts[1:]
    if "extra" in parts:  # drop pydantic's union member tags after extra.<key>
        parts = parts[: parts.index("extra") + 2]
    if parts and isinstance(parts[0], int):
        return "rows" + loc_to_field(parts)
    return loc_to_field(parts) or "rows"


def _raise_validation(exc: ValidationError, csv_lines: Sequence[int] | None = None) -> None:
    first: ErrorDetails = exc.errors()[0]
    if first["type"] == "json_invalid":
        raise UnprocessableEntity(f"malformed JSON: {first['msg']}", code="malformed_json") from exc
    loc = list(first["loc"])
    field = _row_field(loc)
    where = field
    index = loc[1] if loc and loc[0] == "tickets" and len(loc) > 1 else (loc[0] if loc else None)
    if csv_lines is not None and isinstance(index, int) and index < len(csv_lines):
        where = f"{field} (CSV line {csv_lines[index]})"
    raise UnprocessableEntity(f"{where}: {first['msg']}", field=field) from exc


def parse_json(body: bytes) -> tuple[list[TicketIn], uuid.UUID | None]:
    """Validate a JSON import: a list of tickets, or ``{tenant_id?, tickets: [...]}``.

    Returns the tickets and the ``tenant_id`` field (None when absent); 422 naming the
    first bad field as ``rows[i].field``.
    """
    head = body.lstrip()[:1]
    try:
        if head == b"{":
            envelope = TICKET_ENVELOPE.validate_json(body)
            return envelope.tickets, envelope.tenant_id
        if head != b"[":
            raise UnprocessableEntity(
                "body must be a JSON list of tickets or {tenant_id?, tickets: [...]}",
                code="malformed_json",
            )
        return TICKET_LIST.validate_json(body), None
    except ValidationError as exc:
        _raise_validation(exc)
        raise  # unreachable: _raise_validation always raises


def parse_csv(body: bytes) -> tuple[list[TicketIn], list[int]]:
    """Validate a CSV import (UTF-8, a header row naming at least :data:`REQUIRED_COLUMNS`).

    Columns beyond :data:`CSV_COLUMNS` go to each ticket's ``extra`` (an empty cell is
    left out). A file with a header and no rows is an empty import. Errors name the row as
    ``rows[i]`` (0 = the first row after the header) and its CSV line; the CSV line of
    each ticket is returned with the tickets.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnprocessableEntity(
            f"CSV is not UTF-8 (byte {exc.start})", code="bad_encoding"
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise UnprocessableEntity("CSV has no header row", field="columns")
        names = [h.strip().casefold() for h in header]
        if len(set(names)) != len(names) or "" in names:
            raise UnprocessableEntity(
                "CSV header has an empty or repeated column name", field="columns"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise UnprocessableEntity(
                f"CSV misses column(s): {', '.join(missing)}", field="columns"
            )
        extras = [n for n in names if n not in CSV_COLUMNS]
        if len(extras) > MAX_EXTRA_KEYS:
            raise UnprocessableEntity(
                f"CSV has {len(extras)} extra columns; at most {MAX_EXTRA_KEYS} are kept",
                field="columns",
            )
        rows: list[dict[str, Any]] = []
        lines: list[int] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            index = len(rows)
            if len(rows) >= MAX_TICKETS:
                raise UnprocessableEntity(
                    f"more than {MAX_TICKETS} tickets in one import; send several",
                    field="rows",
                )
            if len(cells) != len(names):
                raise UnprocessableEntity(
                    f"rows[{index}] (CSV line {reader.line_num}): {len(cells)} fields, "
                    f"the header has {len(names)}",
                    field=f"rows[{index}]",
                )
            row: dict[str, Any] = {}
            extra: dict[str, str] = {}
            for name, cell in zip(names, cells, strict=True):
                if name in CSV_COLUMNS:
                    if cell.strip() or name in REQUIRED_COLUMNS:
                        row[name] = cell
                elif cell.strip():
                    extra[name] = cell
            if extra:
                row["extra"] = extra
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise UnprocessableEntity(
            f"CSV line {reader.line_num}: {exc}", code="malformed_csv"
        ) from exc
    if not rows:
        return [], []
    try:
        return TICKET_LIST.validate_python(rows, strict=False), lines
    except ValidationError as exc:
        _raise_validation(exc, lines)
        raise  # unreachable


# --- importing ----------------------------------------------------------------------------


def _target_tenant(
    session: Session, identity: Identity, query: uuid.UUID | None, field: uuid.UUID | None
) -> uuid.UUID:
    """The tenant tickets go to: the caller's own, or the one an MSP-wide caller names."""
    if query is not None and field is not None and query != field:
        raise UnprocessableEntity(
            "tenant_id: the query parameter and the body name different tenants",
            field="tenant_id",
        )
    return target_tenant(session, identity, query or field, "import tickets")


def _check_role(identity: Identity) -> None:
    if identity.role not in _EDITORS:
        raise Forbidden("importing tickets needs the admin or analyst role", code="role_required")


def _store(
    session: Session,
    tenant_id: uuid.UUID,
    tickets: list[TicketIn],
    csv_lines: Sequence[int] | None = None,
) -> ImportResult:
    now = utcnow()
    seen: dict[str, int] = {}

    def where(index: int, name: str) -> str:
        line = f" (CSV line {csv_lines[index]})" if csv_lines is not None else ""
        return f"rows[{index}].{name}{line}"

    for index, ticket in enumerate(tickets):
        if ticket.opened_at > now + MAX_FUTURE:
            raise UnprocessableEntity(
                f"{where(index, 'opened_at')}: {ticket.opened_at.isoformat()} is in the future",
                field=f"rows[{index}].opened_at",
            )
        if ticket.external_id in seen:
            raise UnprocessableEntity(
                f"{where(index, 'external_id')}: {ticket.external_id!r} repeats rows"
                f"[{seen[ticket.external_id]}]",
                code="duplicate_external_id",
                field=f"rows[{index}].external_id",
            )
        seen[ticket.external_id] = index
    tenant = TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise UnprocessableEntity(f"tenant_id: no tenant {tenant_id}", field="tenant_id")
    repo = TicketRepository(session)
    hosts = (
        HostnameIndex(repo.device_hosts(tenant_id))
        if any(t.device_hostname for t in tickets)
        else HostnameIndex([])
    )
    alerts = AlertMatcher(repo.alert_windows(tenant_id), now)
    existing = repo.existing_external_ids(tenant_id, list(seen))
    rows: list[dict[str, Any]] = []
    for ticket in tickets:
        device_id = hosts.match(ticket.device_hostname)
        rows.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "external_id": ticket.external_id,
                "opened_at": ticket.opened_at,
                "device_hostname": ticket.device_hostname,
                "user_hash": (
                    pseudonymise_user(tenant.pseudonym_key, ticket.user) if ticket.user else None
                ),
                "category": ticket.category,
                "summary": ticket.summary,
                "extra": ticket.extra,
                "device_id": device_id,
                "alert_id": alerts.match(device_id, ticket.opened_at),
                "created_at": now,
                "updated_at": now,
            }
        )
    try:
        repo.upsert(rows)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return ImportResult(
        tenant_id=tenant_id,
        received=len(rows),
        created=len(rows) - len(existing),
        updated=len(existing),
        matched_devices=sum(1 for r in rows if r["device_id"] is not None),
        matched_alerts=sum(1 for r in rows if r["alert_id"] is not None),
    )


def import_tickets_json(
    session: Session, identity: Identity, body: bytes, tenant: uuid.UUID | None = None
) -> ImportResult:
    """Validate and store a JSON import (admin or analyst); whole or not at all; commits."""
    _check_role(identity)
    tickets, field_tenant = parse_json(body)
    tenant_id = _target_tenant(session, identity, tenant, field_tenant)
    return _store(session, tenant_id, tickets)


def import_tickets_csv(
    session: Session, identity: Identity, body: bytes, tenant: uuid.UUID | None = None
) -> ImportResult:
    """Validate and store a CSV import (admin or analyst); whole or not at all; commits."""
    _check_role(identity)
    tickets, lines = parse_csv(body)
    tenant_id = _target_tenant(session, identity, tenant, None)
    return _store(session, tenant_id, tickets, lines)


# --- matching and reading -----------------------------------------------------------------


def match_tickets_to_alerts(
    session: Session, tenant_id: uuid.UUID, *, now: datetime | None = None
) -> int:
    """Re-match the tenant's tickets to devices and alerts; returns how many changed.

    Call it after changing the tenant's alerts, in the same transaction (it flushes, does
    not commit). Tickets not yet matched to a device are matched again too (the device may
    have enrolled since). ``now`` (default: the current time) ends the window of alerts
    that are still open.
    """
    repo = TicketRepository(session)
    alerts = AlertMatcher(repo.alert_windows(tenant_id), now or utcnow())
    tickets = repo.for_matching(tenant_id, alerts.earliest_onset)
    hosts: HostnameIndex | None = None
    changes: list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]] = []
    for ticket in tickets:
        device_id = ticket.device_id
        if device_id is None and ticket.device_hostname:
            if hosts is None:
                hosts = HostnameIndex(repo.device_hosts(tenant_id))
            device_id = hosts.match(ticket.device_hostname)
        alert_id = alerts.match(device_id, ticket.opened_at)
        if (device_id, alert_id) != (ticket.device_id, ticket.alert_id):
            changes.append((ticket.id, device_id, alert_id))
    repo.set_matches(changes)
    session.flush()
    return len(changes)


def ticket_out(ticket: Ticket) -> TicketOut:
    """A stored ticket in its API shape."""
    return TicketOut(
        id=ticket.id,
        tenant_id=ticket.tenant_id,
        external_id=ticket.external_id,
        opened_at=ticket.opened_at,
        device_hostname=ticket.device_hostname,
        user_hash=ticket.user_hash,
        category=ticket.category,
        summary=ticket.summary,
        extra=ticket.extra,
        device_id=ticket.device_id,
        alert_id=ticket.alert_id,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
    )


def first_ticket_at(session: Session, alert_id: uuid.UUID) -> datetime | None:
    """When the first ticket matched to the alert was opened (None: no ticket yet)."""
    return TicketRepository(session).first_opened_for_alert(alert_id)


def tickets_for_alert(session: Session, alert_id: uuid.UUID) -> list[TicketOut]:
    """The tickets matched to the alert, oldest first."""
    return [ticket_out(t) for t in TicketRepository(session).for_alert(alert_id)]


def list_tickets(
    session: Session,
    tenant_id: uuid.UUID | None,
    *,
    opened_from: datetime | None = None,
    opened_to: datetime | None = None,
    alert_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    limit: int = 100,
    offset: int = 0,
) -> TicketList:
    """A page of the tickets of ``tenant_id`` (None = all tenants), oldest first.

    ``opened_from`` is inclusive, ``opened_to`` exclusive; ``limit`` is 1 to 1000.
    """
    if not 1 <= limit <= 1000:
        raise UnprocessableEntity("limit: must be 1 to 1000", field="limit")
    if offset < 0:
        raise UnprocessableEntity("offset: must be 0 or more", field="offset")
    for name, value in (("from", opened_from), ("to", opened_to)):
        if value is not None and value.tzinfo is None:
            raise UnprocessableEntity(f"{name}: needs a UTC offset", field=name)
    items, total = TicketRepository(session).page(
        tenant_id,
        opened_from=opened_from,
        opened_to=opened_to,
        alert_id=alert_id,
        device_id=device_id,
        limit=limit,
        offset=offset,
    )
    return TicketList(items=[ticket_out(t) for t in items], total=total, limit=limit, offset=offset)
