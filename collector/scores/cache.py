"""The raw events of the open days, kept by the scoring job between runs in one process.

An hourly scoring run rescores today's device-days of every active device, and each needs
the whole day's events. Read from the database every hour, that is most of a day's events
of the fleet, decoded again each time; kept here, a run reads only the events that are new
since the last run (the watermark's predicate) and adds them to the days it holds.

The cache is plain data, no SQL: the scoring job decides when it may be used. It is valid
for one tenant only while the tenant's watermark is the one it was filled under (another
process that moved the watermark, or a run at an earlier ``as_of``, empties it); it holds
only the last :data:`OPEN_DAYS` days before ``as_of`` (older days change only with late data,
and are read from the database then); and it stops taking days beyond ``max_events``
events, after which the remaining devices are read as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

__all__ = ["DEFAULT_MAX_EVENTS", "OPEN_DAYS", "CachedEvent", "ScoringCache", "TenantDays"]

OPEN_DAYS: Final = 2
"""Days kept: today and yesterday (the first run after midnight still adds to yesterday)."""

DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Events kept across all tenants, at most (about 1 GB of decoded events at the most)."""

CachedEvent = tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]
"""(pk, device_id, type, ts, event_id, data), as ``ScoresRepository.event_rows`` gives."""


@dataclass
class TenantDays:
    """One tenant's kept device-days, complete up to ``as_of`` and ``received_through``."""

    received_through: datetime
    as_of: datetime
    days: dict[tuple[uuid.UUID, date], dict[int, CachedEvent]] = field(default_factory=dict)

    def has(self, device: uuid.UUID, first: date, last: date) -> bool:
        """Whether every day of ``device`` from ``first`` to ``last`` is kept."""
        day = first
        while day <= last:
            if (device, day) not in self.days:
                return False
            day += timedelta(days=1)
        return True

    def events(self, device: uuid.UUID, first: date, last: date) -> list[CachedEvent]:
        """The kept events of ``device`` from ``first`` to ``last`` (unordered)."""
        out: list[CachedEvent] = []
        day = first
        while day <= last:
            out.extend(self.days.get((device, day), {}).values())
            day += timedelta(days=1)
        return out

    @property
    def size(self) -> int:
        """Events kept."""
        return sum(len(v) for v in self.days.values())


class ScoringCache:
    """Per tenant, the open device-days' raw events (see the module doc).

    ``max_events`` caps the memory; 0 keeps nothing (every run reads from the database).
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_events = max_events
        self._tenants: dict[uuid.UUID, TenantDays] = {}
        self._size = 0

    def take(
        self, tenant_id: uuid.UUID, received_through: datetime | None, as_of: datetime | None
    ) -> TenantDays | None:
        """The tenant's kept days if they were filled under this watermark, else None
        (and what was kept for the tenant is dropped)."""
        kept = self._tenants.get(tenant_id)
        if kept is None:
            return None
        if kept.received_through != received_through or kept.as_of != as_of:
            self.drop(tenant_id)
            return None
        return kept

    def drop(self, tenant_id: uuid.UUID) -> None:
        """Forget what is kept for one tenant."""
        kept = self._tenants.pop(tenant_id, None)
        if kept is not None:
            self._size -= kept.size

    def store(
        self,
        tenant_id: uuid.UUID,
        received_through: datetime,
        as_of: datetime,
        days: Iterable[tuple[tuple[uuid.UUID, date], Sequence[CachedEvent]]],
        kept: TenantDays | None,
    ) -> None:
        """After a run: the tenant's days, complete up to ``as_of`` under the new watermark.

        ``days`` are the device-days this run read or completed; ``kept`` is what the run
        started from (its days not in ``days`` had no new events and stay valid). Days
        older than :data:`OPEN_DAYS` are dropped, and days beyond ``max_events`` not taken.
        """
        self.drop(tenant_id)
        first_open = as_of.date() - timedelta(days=OPEN_DAYS - 1)
        out = TenantDays(received_through=received_through, as_of=as_of)
        if kept is not None:
            out.days = {k: v for k, v in kept.days.items() if k[1] >= first_open}
        size = self._size + out.size
        for key, rows in days:
            if key[1] < first_open:
                continue
            old = out.days.pop(key, None)
            size -= len(old) if old is not None else 0
            if size + len(rows) > self.max_events:
                continue
            out.days[key] = {row[0]: row for row in rows}
            size += len(rows)
        self._tenants[tenant_id] = out
        self._size = size

    @property
    def size(self) -> int:
        """Events kept across all tenants."""
        return self._size
