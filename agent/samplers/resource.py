"""``resource_sample``: whole-device CPU, memory, swap, disk and time under pressure."""

from __future__ import annotations

import time

from agent import platform
from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope.wire import Event, ResourceSampleEvent

__all__ = ["ResourceSampler"]

_MIN_CPU_WINDOW_S = 0.5


@register
class ResourceSampler(Sampler):
    """CPU over the interval since the previous sample; PSI stall seconds in that interval."""

    name = "resource_sample"
    interval_s = 60.0

    def __init__(self, context: SamplerContext) -> None:
        super().__init__(context)
        platform.cpu_percent()  # prime: the next call measures from here
        self._last = time.monotonic()
        self._last_pressure = platform.pressure_totals()

    def collect(self) -> list[Event]:
        """One ``resource_sample`` event."""
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
            "interval_s": round(elapsed, 3),
            "cpu_percent": min(100.0, cpu),
            "memory_percent": memory.percent,
            "swap_percent": memory.swap_percent,
            "memory_available_mb": round(memory.available_mb, 1),
        }
        disk = platform.disk_percent()
        if disk is not None:
            event["disk_percent"] = disk
        pressure = platform.pressure_totals()
        if pressure and self._last_pressure:
            for resource, key in (
                ("cpu", "cpu_pressure_s"),
                ("memory", "memory_pressure_s"),
                ("io", "io_pressure_s"),
            ):
                if resource in pressure and resource in self._last_pressure:
                    stalled = max(0.0, pressure[resource] - self._last_pressure[resource])
                    event[key] = round(min(stalled, elapsed), 3)  # type: ignore[literal-required]
        self._last_pressure = pressure
        return [event]
