"""The agent's watchdog: it measures the agent's own CPU and memory and reins it in.

Like osquery's watchdog, limits come in named profiles. Every ``window_s`` the watchdog
compares the agent's average CPU (percent of one core over the window) and its resident
memory with the profile. Over a limit for ``throttle_after`` windows in a row, it asks for
**throttling** (the runtime stretches every interval and pauses the optional samplers);
still over for ``restart_after`` more windows while throttled, or memory above twice the
limit at any time, it asks for a **restart** (the runtime re-executes itself: the spool is
durable, nothing is lost, and a leak is cleared). After ``recover_after`` calm windows the
throttle is lifted. The watchdog is a pure object on an injected clock; the runtime acts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = ["PROFILES", "Decision", "Watchdog", "WatchdogLimits"]


@dataclass(frozen=True)
class WatchdogLimits:
    """One profile: CPU (percent of one core, averaged over ``window_s``) and RSS limits."""

    name: str
    cpu_percent: float
    rss_mb: float
    window_s: float = 60.0
    throttle_after: int = 2
    restart_after: int = 3
    recover_after: int = 5


PROFILES = MappingProxyType(
    {
        "normal": WatchdogLimits("normal", cpu_percent=5.0, rss_mb=150.0),
        "restrictive": WatchdogLimits("restrictive", cpu_percent=2.0, rss_mb=80.0),
    }
)
"""The named profiles; ``watchdog.profile = "off"`` in the configuration disables it."""


class Decision(Enum):
    """What the runtime should do after an observation."""

    OK = "ok"
    THROTTLE = "throttle"
    UNTHROTTLE = "unthrottle"
    RESTART = "restart"


class Watchdog:
    """Judges the agent's footprint window by window (see the module docstring)."""

    def __init__(self, limits: WatchdogLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._window_start: float | None = None
        self._cpu_start = 0.0
        self.throttled = False
        self._over = 0
        self._calm = 0
        self.last_cpu_percent: float | None = None

    def observe(self, cpu_s: float, rss_mb: float) -> Decision:
        """Feed the agent's total CPU seconds so far and its RSS now; cheap between windows."""
        now = self._clock()
        if rss_mb > 2 * self.limits.rss_mb:
            return Decision.RESTART
        if self._window_start is None:
            self._window_start, self._cpu_start = now, cpu_s
            return Decision.OK
        elapsed = now - self._window_start
        if elapsed < self.limits.window_s:
            return Decision.OK
        cpu_percent = max(0.0, cpu_s - self._cpu_start) / elapsed * 100
        self.last_cpu_percent = cpu_percent
        self._window_start, self._cpu_start = now, cpu_s
        over = cpu_percent > self.limits.cpu_percent or rss_mb > self.limits.rss_mb
        if over:
            self._over += 1
            self._calm = 0
        else:
            self._calm += 1
            self._over = 0
        if not self.throttled:
            if self._over >= self.limits.throttle_after:
                self.throttled, self._over = True, 0
                return Decision.THROTTLE
            return Decision.OK
        if self._over >= self.limits.restart_after:
            return Decision.RESTART
        if self._calm >= self.limits.recover_after:
            self.throttled, self._calm = False, 0
            return Decision.UNTHROTTLE
        return Decision.OK
