"""``boot``: one event per boot, with its duration and phases where the OS tells them.

Linux: the boot is keyed by ``/proc/sys/kernel/random/boot_id``; phases come from
``systemd-analyze time`` once start-up has finished. Where systemd is absent or fails (a
container), the event carries ``booted_at`` only: no duration is better than a made-up one.
Windows: phases from Diagnostics-Performance event 100, the boot kind from Kernel-Boot 27;
macOS: kernel start to login window from the unified log (see docs/agent.md). Boots without
a boot id are keyed by their start time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent import platform
from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope.wire import BootEvent, Event

__all__ = ["BootSampler"]

_WAIT_FOR_PHASES_S = {"linux": 600.0, "macos": 600.0, "windows": 1800.0}
"""Right after boot the OS may not have written its figures yet (systemd still starting; the
login window not up; Windows writes Diagnostics-Performance 100 minutes after the desktop is
idle): wait up to this long after boot for them, then report the boot without them."""

_MARK = "boot.last_reported"


@register
class BootSampler(Sampler):
    """Reports the current boot once; the last reported boot is remembered persistently."""

    name = "boot"
    interval_s = 300.0

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """A ``boot`` event if this boot was not reported yet (and its figures are ready)."""
        booted_at = platform.boot_time()
        boot_id = platform.boot_id()
        key = boot_id or booted_at.replace(microsecond=0).isoformat()
        if ctx.recall(_MARK) == key:
            return []
        phases = platform.boot_phases()
        uptime_s = (datetime.now(UTC) - booted_at).total_seconds()
        if phases is None and uptime_s < _WAIT_FOR_PHASES_S[platform.os_name()]:
            return []  # the OS may still be writing its figures; look again next round
        event: BootEvent = {
            **event_base(),  # type: ignore[typeddict-item]
            "type": "boot",
            "booted_at": booted_at,
            # A new Linux boot id means the kernel started afresh; UEFI firmware timing
            # proves a power-on. Anything less certain is "unknown", never guessed.
            "boot_kind": "cold" if phases and "firmware_s" in phases else "unknown",
            "source": "systemd-analyze" if phases else "boot-time",
        }
        if boot_id:
            event["boot_id"] = boot_id[:64]
        for name, value in (phases or {}).items():
            # Backends give durations under their wire names, and may say the boot kind
            # and their source (Windows: Diagnostics-Performance 100, fast startup).
            if isinstance(value, str):
                event[name] = value  # type: ignore[literal-required]
            else:
                event[name] = round(float(value), 3)  # type: ignore[literal-required]
        ctx.remember(_MARK, key)
        return [event]
