"""``boot``: one event per boot, with its duration and phases where the OS tells them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from agent import platform
from agent.samplers import Sampler, event_base, register
from dexscope.wire import BootEvent, Event

__all__ = ["BootSampler"]

_WAIT_FOR_PHASES_S = 600.0
"""Right after boot, systemd may still be starting: wait up to this long for its figures."""


@register
class BootSampler(Sampler):
    """Reports the current boot once (remembered in ``state_dir/boot.json``)."""

    name = "boot"
    interval_s = 300.0

    def collect(self) -> list[Event]:
        """A ``boot`` event if this boot was not reported yet (and its figures are ready)."""
        booted_at = platform.boot_time()
        key = platform.boot_id() or booted_at.replace(microsecond=0).isoformat()
        marker = self.context.state_dir / "boot.json"
        try:
            if json.loads(marker.read_text()).get("boot") == key:
                return []
        except (OSError, ValueError):
            pass
        phases = platform.boot_phases()
        uptime_s = (datetime.now(UTC) - booted_at).total_seconds()
        if phases is None and platform.os_name() == "linux" and uptime_s < _WAIT_FOR_PHASES_S:
            return []
        event: BootEvent = {
            **event_base(),  # type: ignore[typeddict-item]
            "type": "boot",
            "booted_at": booted_at,
            "boot_kind": "cold" if phases and "firmware_s" in phases else "unknown",
            "source": "systemd-analyze" if phases else "boot-time",
        }
        if platform.boot_id():
            event["boot_id"] = key[:64]
        for field, value in (phases or {}).items():
            event[field] = round(value, 3)  # type: ignore[literal-required]
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"boot": key}))
        os.replace(tmp, marker)
        return [event]
