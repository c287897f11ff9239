"""Running samplers: timing, error isolation, self-metrics and scheduling.

:class:`SamplerRunner` runs one sampler at a time, times it, turns an exception into a
recorded failure (a failing sampler never stops the others) and keeps the per-sampler
:class:`dexscope.wire.SamplerStats` that the ``agent_health`` sampler reports.
:class:`Scheduler` decides which samplers are due, each on its own interval, on a monotonic
clock. :meth:`SamplerRunner.round` runs a list of samplers and spools what they produced in
one transaction.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from agent.config import SamplerSettings
from agent.samplers import OBSERVED_TYPES, Sampler, SamplerContext
from dexscope.wire import Event, SamplerStats

__all__ = ["EventSink", "SamplerRunner", "Scheduler", "build_samplers"]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a round's events go (the spool)."""

    def append(self, events: Sequence[Event], *, marks: Mapping[str, str] | None = None) -> int:
        """Store ``events`` and ``marks`` together; returns how many events were stored."""
        ...


class SamplerRunner:
    """Runs samplers one at a time, timing each run and isolating its errors.

    A sampler that raises is recorded as a failure (with its error text, and whatever it
    asked the context to remember is discarded) and never stops the others; an empty result
    is a success ("no data"). :meth:`take_stats` hands the numbers to the ``agent_health``
    sampler and starts a new period. ``clock`` is injected for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stats: dict[str, SamplerStats] = {}

    def run(self, sampler: Sampler, ctx: SamplerContext) -> list[Event]:
        """Run one sampler; returns its events (empty on failure)."""
        staged_before = dict(ctx.staged)
        started = self._clock()
        error: str | None = None
        events: list[Event] = []
        try:
            events = sampler.collect(ctx)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            events = []
            ctx.staged.clear()
            ctx.staged.update(staged_before)
            log.warning("sampler %s failed: %s", sampler.name, error)
        else:
            ctx.observed.extend(e for e in events if e["type"] in OBSERVED_TYPES)
        duration_ms = max(0.0, (self._clock() - started) * 1000)
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

    def round(self, samplers: Sequence[Sampler], ctx: SamplerContext, sink: EventSink) -> int:
        """Run ``samplers`` in order and store their events (and remembered values) at once."""
        events: list[Event] = []
        for sampler in samplers:
            events.extend(self.run(sampler, ctx))
        marks = ctx.take_staged()
        if not events and not marks:
            return 0
        return sink.append(events, marks=marks)

    def take_stats(self) -> Mapping[str, SamplerStats]:
        """The stats since the previous call (then reset)."""
        with self._lock:
            stats, self._stats = self._stats, {}
        return stats


def build_samplers(
    registry: Mapping[str, type[Sampler]],
    settings: Mapping[str, SamplerSettings],
    existing: Sequence[Sampler] = (),
) -> list[Sampler]:
    """The enabled samplers, health last (so it sees the others' stats of the same round).

    Instances in ``existing`` are reused (a configuration change keeps their state, e.g. the
    previous CPU reading); samplers no longer enabled are dropped.
    """
    by_name = {s.name: s for s in existing}
    enabled = [name for name, s in settings.items() if s.enabled and name in registry]
    enabled.sort(key=lambda name: name == "agent_health")
    samplers = [by_name.get(name) or registry[name]() for name in enabled]
    for sampler in samplers:
        sampler.configure(settings[sampler.name].options)
    return samplers


class Scheduler:
    """Decides which samplers are due, each on its own interval (monotonic clock).

    The first round runs every sampler at once; later runs are spaced by each sampler's
    interval, with a ±2 % random offset so a fleet does not sample in lockstep.
    """

    def __init__(
        self,
        samplers: Sequence[Sampler],
        intervals: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._samplers: list[Sampler] = []
        self._intervals: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self.update(samplers, intervals)

    def update(self, samplers: Sequence[Sampler], intervals: Mapping[str, float]) -> None:
        """Switch to new samplers and intervals (a new configuration).

        A new sampler is due at once; a kept one stays on its schedule, brought forward if
        its new interval is shorter.
        """
        now = self._clock()
        due: dict[str, float] = {}
        for sampler in samplers:
            interval = intervals.get(sampler.name, sampler.interval_s)
            previous = self._due.get(sampler.name)
            if previous is None:
                due[sampler.name] = now
            else:
                last_run = previous - self._intervals.get(sampler.name, interval)
                due[sampler.name] = min(previous, last_run + interval)
            self._intervals[sampler.name] = interval
        self._samplers = list(samplers)
        self._due = due

    def due(self) -> list[Sampler]:
        """The samplers due now (in their configured order); each is rescheduled."""
        now = self._clock()
        ready = [s for s in self._samplers if self._due[s.name] <= now]
        for sampler in ready:
            interval = self._intervals[sampler.name]
            self._due[sampler.name] = now + interval * self._rng.uniform(0.98, 1.02)
        return ready

    def next_in_s(self) -> float:
        """Seconds until the next sampler is due (an hour when none is enabled)."""
        if not self._due:
            return 3600.0
        return max(0.0, min(self._due.values()) - self._clock())
