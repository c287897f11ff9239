"""Backend for Windows and macOS until their own land: no boot phases, no pressure data.

The telemetry issue brings ``windows.py`` (Diagnostics-Performance event 100, hung windows,
WER) and ``darwin.py`` (unified log, DiagnosticReports). Until then the boot sampler reports
only when the OS booted, with no duration, and resource samples carry no pressure fields:
missing data is left out, never invented.
"""

from __future__ import annotations

__all__ = ["boot_id", "read_pressure_totals", "systemd_boot_phases"]


def systemd_boot_phases(timeout_s: float = 5.0) -> dict[str, float] | None:
    """Not available on this OS yet (see the module docstring)."""
    return None


def read_pressure_totals() -> dict[str, float] | None:
    """Not available on this OS yet (see the module docstring)."""
    return None


def boot_id() -> str | None:
    """No boot id here: the boot sampler keys boots by their start time."""
    return None
