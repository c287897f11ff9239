"""Windows backend (foundation): no boot phases yet.

Boot phases come from Diagnostics-Performance event 100 in the telemetry issue; until then
the boot sampler reports only when Windows booted, with no duration.
"""

from __future__ import annotations

__all__ = ["boot_id", "read_pressure_totals", "systemd_boot_phases"]


def systemd_boot_phases(timeout_s: float = 5.0) -> dict[str, float] | None:
    """Not available on Windows yet (see module docstring)."""
    return None


def read_pressure_totals() -> dict[str, float] | None:
    """Windows has no PSI equivalent exposed here yet."""
    return None


def boot_id() -> str | None:
    """No boot id on Windows: the boot sampler keys boots by their start time."""
    return None
