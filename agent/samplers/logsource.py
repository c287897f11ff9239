"""The shared shape of samplers that read an OS log: cursor in, events out, cursor kept.

A :class:`LogSampler` asks the platform facade for records after its cursor (the first time:
after ``now - lookback_s``), drops the backend's private keys, and remembers the new cursor
and the source it read through ``ctx.remember`` — stored in the same spool transaction as
the events, so a record is reported once even if the agent is killed mid-round. Not a
sampler itself (it is not registered); the modules that subclass it are.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from agent.platform.common import Harvest
from agent.samplers import Sampler, SamplerContext
from dexscope.wire import Event

__all__ = ["LogSampler", "source_mark"]


def source_mark(name: str) -> str:
    """The persistent key under which a sampler records its source (``agent status``)."""
    return f"{name}.source"


class LogSampler(Sampler):
    """Base of the samplers that harvest an OS log (crashes, hangs, sign-ins, changes)."""

    lookback_s: ClassVar[float] = 86400.0
    """On the very first read, report records up to this old (one day by default)."""

    @abstractmethod
    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """Read the OS log after ``cursor`` (or after ``since`` the first time)."""

    def finish(self, event: dict[str, Any], ctx: SamplerContext) -> dict[str, Any] | None:
        """Last touch before spooling (None drops the event); by default the backend's
        private ``_``-prefixed keys are removed."""
        for key in [k for k in event if k.startswith("_")]:
            del event[key]
        return event

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """The new records as wire events; the cursor and source are remembered with them."""
        cursor_key = f"{self.name}.cursor"
        cursor = ctx.recall(cursor_key)
        since = datetime.now(UTC) - timedelta(seconds=self.lookback_s)
        harvest = self.read(cursor, since)
        events: list[Event] = []
        for raw in harvest.events:
            done = self.finish(dict(raw), ctx)
            if done is not None:
                events.append(done)  # type: ignore[arg-type]
        if harvest.cursor is not None and harvest.cursor != cursor:
            ctx.remember(cursor_key, harvest.cursor)
        source = json.dumps({"source": harvest.source, "degraded": harvest.degraded})
        if ctx.recall(source_mark(self.name)) != source:
            ctx.remember(source_mark(self.name), source)
        return events
