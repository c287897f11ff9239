"""The detection job's inputs, carried between its runs in one process.

Every hourly run of the detectors reads weeks of data — the sparse events of two weeks, a
week of probes, four weeks of daily rollups — of which only the last hour is new. Kept here,
a run reads what is new since the last one and drops what left the windows:

* :class:`EventWindow` — events of some types in a trailing window, by their primary key;
  new ones are those timestamped after the last run or in batches received after it (late
  data), the same rule as the scoring watermark.
* :class:`TenantInputs` — one tenant's windows and its device-day rollups, which are read
  again only where the scoring job rewrote them since (``computed_at``).

Plain data, no SQL (the detection job does the reading). A run at an earlier ``as_of`` than
the last, or a cache that another tenant's data never filled, starts empty: a cached run
always gives the inputs a fresh read would.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

__all__ = ["DayRow", "DetectionCache", "EventWindow", "TenantInputs", "WindowEvent"]

WindowEvent = tuple[int, uuid.UUID, str, datetime, uuid.UUID, dict[str, Any]]
"""(pk, device_id, type, ts, event_id, data)."""

DayRow = tuple[float, dict[str, Any], dict[str, Any], float | None, dict[str, Any]]
"""(active_s, counts, metrics, score, measures) of one device-day rollup."""


@dataclass
class EventWindow:
    """Events with ``start < ts <= as_of`` of the last fill, by primary key.

    ``project`` trims each event's fields to what the detectors read (probes are many). The
    time order is kept as events arrive (new ones are nearly always the latest), so a run
    neither sorts the whole window again nor scans it to drop what left it.
    """

    project: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    rows: dict[int, WindowEvent] = field(default_factory=dict)
    _order: list[tuple[tuple[datetime, int, int], int]] = field(default_factory=list)

    def add(self, events: Iterable[WindowEvent]) -> None:
        """Add (or replace) events."""
        new: list[tuple[tuple[datetime, int, int], int]] = []
        for pk, device, kind, ts, event_id, data in events:
            kept = self.project(data) if self.project is not None else data
            if pk not in self.rows:  # an event read again has the same time and ids
                new.append(((ts, device.int, event_id.int), pk))
            self.rows[pk] = (pk, device, kind, ts, event_id, kept)
        if not new:
            return
        new.sort()
        if self._order and new[0] < self._order[-1]:
            self._order = sorted([*self._order, *new])  # late data: merge (nearly sorted)
        else:
            self._order.extend(new)

    def drop_until(self, start: datetime) -> None:
        """Forget events with ``ts <= start`` (they left the window)."""
        cut = bisect.bisect_right(self._order, start, key=lambda entry: entry[0][0])
        for _key, pk in self._order[:cut]:
            del self.rows[pk]
        del self._order[:cut]

    def ordered(self) -> list[WindowEvent]:
        """The events by time, device and event id (the order the detectors expect)."""
        return [self.rows[pk] for _key, pk in self._order]


@dataclass
class TenantInputs:
    """One tenant's carried detection inputs, complete up to ``as_of``.

    ``received_through``: batches received up to then are in the windows; ``read_at``: the
    rollups computed up to then are in ``days``.
    """

    as_of: datetime
    received_through: datetime
    read_at: datetime
    windows: dict[str, EventWindow]
    days: dict[tuple[uuid.UUID, date], DayRow] = field(default_factory=dict)
    presence: dict[tuple[uuid.UUID, date], tuple[str, ...]] = field(default_factory=dict)

    def drop_days_before(self, first: date) -> None:
        """Forget rollups of days before ``first``."""
        for store in (self.days, self.presence):
            for key in [k for k in store if k[1] < first]:
                del store[key]

    def set_days(
        self,
        rows: Iterable[tuple[uuid.UUID, date, DayRow]],
        presence: Mapping[tuple[uuid.UUID, date], tuple[str, ...]],
    ) -> None:
        """Replace the rollups and app presence of the device-days read again."""
        for device, day, row in rows:
            self.days[(device, day)] = row
            self.presence[(device, day)] = presence.get((device, day), ())


class DetectionCache:
    """Per tenant, the carried inputs (see the module doc)."""

    def __init__(self) -> None:
        self._tenants: dict[uuid.UUID, TenantInputs] = {}

    def take(self, tenant_id: uuid.UUID, as_of: datetime) -> TenantInputs | None:
        """The tenant's inputs if they can be carried forward to ``as_of`` (not backwards)."""
        kept = self._tenants.get(tenant_id)
        if kept is not None and as_of < kept.as_of:
            del self._tenants[tenant_id]
            return None
        return kept

    def put(self, tenant_id: uuid.UUID, inputs: TenantInputs) -> None:
        """Keep a tenant's inputs after a run."""
        self._tenants[tenant_id] = inputs

    def drop(self, tenant_id: uuid.UUID) -> None:
        """Forget one tenant's inputs."""
        self._tenants.pop(tenant_id, None)

    @property
    def size(self) -> int:
        """Events and rollups kept across all tenants."""
        return sum(
            len(t.days) + sum(len(w.rows) for w in t.windows.values())
            for t in self._tenants.values()
        )
