"""``app_hang``: applications that stop responding, sampled and from the OS's hang log.

Sampled: every run asks the backend which applications are not responding now (Windows: a
top-level window for which ``IsHungAppWindow`` is true; Linux: a user process in
uninterruptible sleep). A process counts as hung once it has been seen so in two consecutive
samples at least ``min_hang_s`` apart (one D-state sample is just a disk read); its hang is
reported when it responds again, or ends, with ``hang_duration_s`` = the time between the
first and the last sample that saw it hung (a lower bound, documented). Where the OS itself
logs hangs (Windows Application Hang 1002, macOS hang reports), those records are harvested
too; a sampled hang whose process then disappeared is left to the OS's record on those
systems, so one hang the user ended by killing the app is not counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent import platform
from agent.platform.common import Harvest, HungApp
from agent.samplers import SamplerContext, event_base, register
from agent.samplers.logsource import LogSampler
from dexscope.wire import Event

__all__ = ["AppHangSampler"]


@dataclass
class _Hang:
    app: HungApp
    first_seen: float
    last_seen: float
    first_wall: datetime


@register
class AppHangSampler(LogSampler):
    """Hangs sampled every ``interval_s`` plus hangs the OS logged."""

    name = "app_hang"
    interval_s = 30.0

    def __init__(
        self,
        *,
        sample: Callable[[], list[HungApp]] | None = None,
        read_log: Callable[[str | None, datetime], Harvest] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sample = sample or platform.hung_apps
        self._read_log = read_log or platform.read_app_hangs
        self._clock = clock
        self._open: dict[tuple[int, str], _Hang] = {}
        self._min_hang_s = 5.0
        self._os_logs_hangs = False

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """``min_hang_s``: the shortest hang reported (1 to 600 s, default 5)."""
        for key, value in options.items():
            if key != "min_hang_s":
                raise ValueError(f"{key}: unknown key")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("min_hang_s: must be a number")
            if not 1 <= value <= 600:
                raise ValueError("min_hang_s: must be between 1 and 600")

    def configure(self, options: Mapping[str, Any]) -> None:
        """Take ``min_hang_s``."""
        self._min_hang_s = float(options.get("min_hang_s", 5.0))

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """The OS's own hang records (none on Linux)."""
        harvest = self._read_log(cursor, since)
        self._os_logs_hangs = harvest.source != "none"
        return harvest

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """Logged hangs, plus sampled hangs that ended since the previous run."""
        events = super().collect(ctx)
        now = self._clock()
        current = {(h.pid, h.app_name): h for h in self._sample()}
        for key, app in current.items():
            hang = self._open.get(key)
            if hang is None:
                self._open[key] = _Hang(app, now, now, datetime.now(UTC))
            else:
                hang.last_seen = now
        for key in [k for k in self._open if k not in current]:
            hang = self._open.pop(key)
            duration = hang.last_seen - hang.first_seen
            if duration < self._min_hang_s:
                continue
            gone = not platform.pid_exists(hang.app.pid)
            if gone and self._os_logs_hangs:
                continue  # the OS logged this one itself (read above or next time)
            events.append(self._event(hang, duration))
        return events

    @staticmethod
    def _event(hang: _Hang, duration: float) -> Event:
        event: dict[str, Any] = {
            **event_base(hang.first_wall + timedelta(seconds=duration)),
            "type": "app_hang",
            "app_name": hang.app.app_name,
            "hang_duration_s": round(min(duration, 7 * 86400.0), 3),
            "source": f"sampled:{hang.app.reason}",
        }
        if hang.app.app_version:
            event["app_version"] = hang.app.app_version
        return event  # type: ignore[return-value]
