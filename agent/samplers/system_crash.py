"""``system_crash``: System crashes, kernel panics and unclean or unexpected shutdowns.

The source per OS (see docs/agent.md) is the platform backend's
``read_system_crashes``; this module only keeps the cursor so each record is reported once.
"""

from __future__ import annotations

from datetime import datetime

from agent import platform
from agent.platform.common import Harvest
from agent.samplers import register
from agent.samplers.logsource import LogSampler

__all__ = ["SystemCrashSampler"]


@register
class SystemCrashSampler(LogSampler):
    """System crashes, kernel panics and unclean or unexpected shutdowns."""

    name = "system_crash"
    interval_s = 300.0

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """New records from the OS (see :func:`agent.platform.read_system_crashes`)."""
        return platform.read_system_crashes(cursor, since)
