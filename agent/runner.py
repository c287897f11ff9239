"""Running samplers: timing, error isolation, self-metrics and scheduling."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

from agent.config import SamplerSettings
from agent.samplers import Sampler, SamplerContext
from dexscope.wire import Event, SamplerStats

__all__ = ["SamplerRunner", "Scheduler", "build_samplers"]

log = logging.getLogger(__name__)


class SamplerRunner:
    """Runs samplers one at a time, timing each run and isolating its errors.

    A sampler that raises is recorded as a failure (with its error text) and never stops the
    others; an empty result is a success ("no data"). :meth:`take_stats` hands the numbers
    to the ``agent_health`` sampler and starts a new period.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stats: dict[str, SamplerStats] = {}

    def run(self, sampler: Sampler) -> list[Event]:
        """Run one sampler; returns its events (empty on failure)."""
        started = self._clock()
        error: str | None = None
        events: list[Event] = []
        try:
            events = sampler.collect()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("sampler %s failed: %s", sampler.name, error)
        duration_ms = (self._clock() - started) * 1000
        with self._lock:
            stats = self._stats.setdefault(
                sampler.name, {"runs": 0, "failures": 0, "last_duration_ms": 0.0}
            )
            stats["runs"] += 1
            stats["last_duration_ms"] = round(duration_ms, 3)
            if error is not None:
                stats["failures"] += 1
                stats["last_error"] = error
        return events

    def take_stats(self) -> Mapping[str, SamplerStats]:
        """The stats since the previous call (then reset)."""
        with self._lock:
            stats, self._stats = self._stats, {}
        return stats


def build_samplers(
    registry: Mapping[str, type[Sampler]],
    settings: Mapping[str, SamplerSettings],
    context: SamplerContext,
) -> list[Sampler]:
    """Instantiate the enabled samplers, health last (so it sees the others' stats)."""
    enabled = [name for name, s in settings.items() if s.enabled and name in registry]
    enabled.sort(key=lambda name: name == "agent_health")
    return [registry[name](context) for name in enabled]


class Scheduler:
    """Decides which samplers are due, each on its own interval (monotonic clock).

    The first round runs every sampler at once; later rounds are spaced by each sampler's
    configured interval, with a small random offset so a fleet does not sample in lockstep.
    """

    def __init__(
        self,
        samplers: list[Sampler],
        intervals: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._samplers = samplers
        self._intervals = intervals
        self._clock = clock
        self._rng = rng or random.Random()
        now = clock()
        self._due = {s.name: now for s in samplers}

    def due(self) -> list[Sampler]:
        """The samplers due now; each is rescheduled one interval later."""
        now = self._clock()
        ready = [s for s in self._samplers if self._due[s.name] <= now]
        for sampler in ready:
            interval = self._intervals[sampler.name]
            self._due[sampler.name] = now + interval * self._rng.uniform(0.98, 1.02)
        return ready

    def next_in_s(self) -> float:
        """Seconds until the next sampler is due."""
        if not self._due:
            return 3600.0
        return max(0.0, min(self._due.values()) - self._clock())
