"""``app_crash``: Application crashes (faulting module, exception code) from the OS crash logs.

The source per OS (see docs/agent.md) is the platform backend's
``read_app_crashes``; this module only keeps the cursor so each record is reported once.
"""

from __future__ import annotations

from datetime import datetime

from agent import platform
from agent.platform.common import Harvest
from agent.samplers import register
from agent.samplers.logsource import LogSampler

__all__ = ["AppCrashSampler"]


@register
class AppCrashSampler(LogSampler):
    """Application crashes (faulting module, exception code) from the OS crash logs."""

    name = "app_crash"
    interval_s = 60.0

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """New records from the OS (see :func:`agent.platform.read_app_crashes`)."""
        return platform.read_app_crashes(cursor, since)
