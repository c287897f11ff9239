"""XLA periods: calendar months (``YYYY-MM``) and ISO weeks (``YYYY-Www``), in UTC days."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

__all__ = ["Period", "parse_period", "period_containing"]

_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK: Final = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Period:
    """One reporting period: its label and its first and last UTC day (inclusive)."""

    label: str
    kind: str
    """``month`` or ``week``."""
    start: date
    end: date

    @property
    def start_ts(self) -> datetime:
        """The period's first instant (UTC)."""
        return datetime.combine(self.start, time(), UTC)

    @property
    def end_ts(self) -> datetime:
        """The instant after the period (UTC, exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period just before this one, of the same kind."""
        return period_containing(self.kind, self.start - timedelta(days=1))


def parse_period(label: str, kind: str | None = None) -> Period:
    """``2026-11`` (a month) or ``2026-W47`` (an ISO week) as a :class:`Period`.

    Raises ValueError with a message naming the expected forms; with ``kind`` given, a
    label of the other kind is refused too.
    """
    month = _MONTH.match(label)
    week = _WEEK.match(label)
    try:
        if month and kind in (None, "month"):
            year, m = int(month[1]), int(month[2])
            start = date(year, m, 1)
            nxt = date(year + (m == 12), m % 12 + 1, 1)
            return Period(label, "month", start, nxt - timedelta(days=1))
        if week and kind in (None, "week"):
            start = date.fromisocalendar(int(week[1]), int(week[2]), 1)
            return Period(label, "week", start, start + timedelta(days=6))
    except ValueError:
        pass
    expected = {"month": "YYYY-MM", "week": "YYYY-Www"}.get(kind or "", "YYYY-MM or YYYY-Www")
    raise ValueError(f"period {label!r} is not a valid {expected} period")


def period_containing(kind: str, day: date) -> Period:
    """The month or ISO week that contains ``day``."""
    if kind == "month":
        return parse_period(f"{day.year:04d}-{day.month:02d}", "month")
    iso = day.isocalendar()
    return parse_period(f"{iso.year:04d}-W{iso.week:02d}", "week")
