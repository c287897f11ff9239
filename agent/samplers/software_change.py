"""``software_change``: installs, updates, removals, OS patches and drivers.

Each change carries the old and new version where the OS log gives them.

The source per OS (see docs/agent.md) is the platform backend's
``read_software_changes``; this module only keeps the cursor so each record is reported once.
"""

from __future__ import annotations

from datetime import datetime

from agent import platform
from agent.platform.common import Harvest
from agent.samplers import register
from agent.samplers.logsource import LogSampler

__all__ = ["SoftwareChangeSampler"]


@register
class SoftwareChangeSampler(LogSampler):
    """Software installs, updates, removals, OS patches and drivers, with old and new versions."""

    name = "software_change"
    interval_s = 300.0

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """New records from the OS (see :func:`agent.platform.read_software_changes`)."""
        return platform.read_software_changes(cursor, since)
