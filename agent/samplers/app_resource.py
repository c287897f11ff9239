"""``app_resource``: per application (grouped by executable, not per PID), CPU, memory and
foreground time, summarised on the device.

Every run (``interval_s``, 30 s by default) is a cheap foreground tick: the backend says
which process owns the focused window, where the OS tells (Windows in the user's session);
its application is credited the time since the previous tick. Every ``summary_s`` (300 s by
default) the sampler reads every process once and emits one ``app_resource`` event per
application among the ``max_apps`` busiest (by CPU in the period, then by memory, and any
that had the foreground): CPU seconds used in the period (per process: CPU now minus CPU at
the previous summary, or all of it for a process started since), resident memory now,
process count, foreground seconds. Bulk numbers thus leave the device as per-period
summaries, never as raw samples. Launch times are not measured (no OS gives them cheaply;
see docs/agent.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent import platform
from agent.platform import ProcessSample
from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope.wire import Event

__all__ = ["AppResourceSampler"]

_LIMITS = {"summary_s": (60.0, 86400.0), "max_apps": (1, 200)}


@dataclass
class _App:
    cpu_s: float = 0.0
    rss_bytes: int = 0
    processes: int = 0
    foreground_s: float = 0.0
    pids: set[int] = field(default_factory=set)


@register
class AppResourceSampler(Sampler):
    """Foreground ticks every run, one summary per application every ``summary_s``."""

    name = "app_resource"
    interval_s = 30.0

    def __init__(
        self,
        *,
        processes: Callable[[], list[ProcessSample]] | None = None,
        foreground: Callable[[], int | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._processes = processes or platform.process_samples
        self._foreground = foreground or platform.foreground_pid
        self._clock = clock
        self._summary_s = 300.0
        self._max_apps = 15
        self._cpu_by_pid: dict[tuple[int, float], float] | None = None
        self._period_start = clock()
        self._last_tick = self._period_start
        self._foreground_s: dict[str, float] = {}
        self._fg_pid: int | None = None
        self._fg_name: str | None = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """``summary_s`` (60 to 86400) and ``max_apps`` (1 to 200)."""
        for key, value in options.items():
            if key not in _LIMITS:
                raise ValueError(f"{key}: unknown key")
            lo, hi = _LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key}: must be a number")
            if not lo <= value <= hi or (key == "max_apps" and not float(value).is_integer()):
                raise ValueError(f"{key}: must be between {lo:g} and {hi:g}")

    def configure(self, options: Mapping[str, Any]) -> None:
        """Take ``summary_s`` and ``max_apps``."""
        self._summary_s = float(options.get("summary_s", 300.0))
        self._max_apps = int(options.get("max_apps", 15))

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """A foreground tick; at the end of a period, the period's per-application events."""
        now = self._clock()
        self._tick(now)
        if self._cpu_by_pid is None:  # first run: the baseline of CPU counters
            self._cpu_by_pid = {(p.pid, p.started): p.cpu_s for p in self._processes()}
            self._period_start = now
            return []
        if now - self._period_start < self._summary_s:
            return []
        return self._summary(now)

    def _tick(self, now: float) -> None:
        elapsed = min(now - self._last_tick, 2 * self.interval_s)
        self._last_tick = now
        pid = self._foreground()
        if pid is None:
            self._fg_pid = self._fg_name = None
            return
        if pid != self._fg_pid:
            self._fg_pid, self._fg_name = pid, platform.process_name(pid)
        if self._fg_name:
            self._foreground_s[self._fg_name] = self._foreground_s.get(self._fg_name, 0) + elapsed

    def _summary(self, now: float) -> list[Event]:
        previous = self._cpu_by_pid or {}
        current: dict[tuple[int, float], float] = {}
        apps: dict[str, _App] = {}
        for proc in self._processes():
            key = (proc.pid, proc.started)
            current[key] = proc.cpu_s
            app = apps.setdefault(proc.name, _App())
            app.cpu_s += max(0.0, proc.cpu_s - previous.get(key, 0.0))
            app.rss_bytes += proc.rss_bytes
            app.processes += 1
        for name, seconds in self._foreground_s.items():
            apps.setdefault(name, _App()).foreground_s = seconds
        period = now - self._period_start
        self._cpu_by_pid, self._period_start, self._foreground_s = current, now, {}
        ranked = sorted(apps.items(), key=lambda kv: (kv[1].cpu_s, kv[1].rss_bytes), reverse=True)
        chosen = dict(ranked[: self._max_apps])
        chosen.update({n: a for n, a in apps.items() if a.foreground_s > 0})
        events: list[Event] = []
        for name, app in chosen.items():
            event: dict[str, Any] = {
                **event_base(),
                "type": "app_resource",
                "app_name": name,
                "interval_s": round(min(period, 7 * 86400.0), 3),
                "process_count": app.processes,
                "cpu_s": round(min(app.cpu_s, 7 * 86400.0), 3),
                "rss_mb": round(app.rss_bytes / 2**20, 1),
            }
            if app.foreground_s > 0:
                event["foreground_s"] = round(min(app.foreground_s, period), 1)
            events.append(event)  # type: ignore[arg-type]
        return events
