"""``agent_health``: the agent's own footprint and plumbing, so its cost is visible."""

from __future__ import annotations

import time

from agent import platform
from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope.wire import AgentHealthEvent, Event

__all__ = ["HealthSampler"]


@register
class HealthSampler(Sampler):
    """CPU and RSS of the agent, spool depth, drop and failure counters, sampler stats.

    The per-sampler stats cover the period since the previous ``agent_health`` event (the
    runner resets them when this sampler reads them).
    """

    name = "agent_health"
    interval_s = 300.0

    def __init__(self) -> None:
        self._own = platform.OwnProcess()
        self._last = time.monotonic()

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """One ``agent_health`` event."""
        now = time.monotonic()
        stats = ctx.spool_stats()
        event: AgentHealthEvent = {
            **event_base(),  # type: ignore[typeddict-item]
            "type": "agent_health",
            "interval_s": round(now - self._last, 3),
            "cpu_percent": round(self._own.cpu_percent(), 2),
            "rss_mb": round(self._own.rss_mb(), 1),
            "spool_events": stats.events,
            "spool_bytes": stats.bytes,
            "dropped_events_total": stats.dropped_events_total,
            "upload_failures_total": stats.counters["upload_failures_total"],
            "samplers": dict(ctx.sampler_stats()),
        }
        if "throttled" in ctx.agent_state:
            event["throttled"] = bool(ctx.agent_state["throttled"])
        skips = ctx.agent_state.pop("survey_skips", None)
        if skips:
            event["survey_skips"] = {str(k)[:64]: int(v) for k, v in skips.items()}
        if "watchdog_restarts_total" in ctx.agent_state:
            event["watchdog_restarts_total"] = int(ctx.agent_state["watchdog_restarts_total"])
        self._last = now
        return [event]
