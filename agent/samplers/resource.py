"""``resource_sample``: whole-device CPU, memory, swap, disk and time under pressure."""

from __future__ import annotations

import time
from collections.abc import Mapping

from agent import platform
from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope.wire import Event, ResourceSampleEvent

__all__ = ["ResourceSampler", "stall_seconds"]

_MIN_CPU_WINDOW_S = 0.5
"""CPU use over a shorter window is noise: the first sample blocks this long instead."""
_MAX_INTERVAL_S = 7 * 86400.0
"""The wire's bound on a duration."""


@register
class ResourceSampler(Sampler):
    """CPU over the interval since the previous sample; PSI stall seconds in that interval.

    PSI ``some`` totals are cumulative microseconds since boot; the difference between two
    readings is the time some task was stalled during the interval (bounded by the interval).
    """

    name = "resource_sample"
    interval_s = 60.0

    def __init__(self) -> None:
        platform.cpu_percent()  # prime: the next call measures from here
        self._last = time.monotonic()
        self._last_pressure = platform.pressure_totals()

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """One ``resource_sample`` event (a too-short window blocks half a second for CPU)."""
        elapsed = time.monotonic() - self._last
        if elapsed < _MIN_CPU_WINDOW_S:
            cpu = platform.cpu_percent(block_s=_MIN_CPU_WINDOW_S)
            elapsed += _MIN_CPU_WINDOW_S
        else:
            cpu = platform.cpu_percent()
        self._last = time.monotonic()
        memory = platform.memory()
        event: ResourceSampleEvent = {
            **event_base(),  # type: ignore[typeddict-item]
            "type": "resource_sample",
            "interval_s": round(min(elapsed, _MAX_INTERVAL_S), 3),
            "cpu_percent": min(100.0, cpu),
            "memory_percent": memory.percent,
            "swap_percent": memory.swap_percent,
            "memory_available_mb": round(memory.available_mb, 1),
        }
        disk = platform.disk_percent()
        if disk is not None:
            event["disk_percent"] = disk
        pressure = platform.pressure_totals()
        for key, seconds in stall_seconds(self._last_pressure, pressure, elapsed).items():
            event[key] = seconds  # type: ignore[literal-required]
        self._last_pressure = pressure
        return [event]


def stall_seconds(
    before: Mapping[str, float] | None, after: Mapping[str, float] | None, elapsed_s: float
) -> dict[str, float]:
    """``{cpu,memory,io}_pressure_s`` from two PSI ``some`` totals (seconds since boot).

    A resource missing from either reading is left out; a counter that went backwards (it
    cannot, short of a reboot) counts as 0; the stall is bounded by the interval.
    """
    if not before or not after:
        return {}
    out: dict[str, float] = {}
    for resource in ("cpu", "memory", "io"):
        if resource in before and resource in after:
            stalled = max(0.0, after[resource] - before[resource])
            out[f"{resource}_pressure_s"] = round(min(stalled, elapsed_s), 3)
    return out
