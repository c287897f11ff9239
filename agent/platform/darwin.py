"""macOS backend (interim): boot time only, no boot phases, no pressure data.

Imported by :mod:`agent.platform` only on macOS. In this release the boot sampler reports
when the OS booted (from psutil, via the facade) with ``boot_kind: "unknown"`` and no
duration, and resource samples carry no ``*_pressure_s`` fields: missing data is left
out, never invented. The real backend (``kern.boottime``, the unified log,
DiagnosticReports) is a later issue.
This module uses only the standard library so it can be imported (and its API checked)
on any OS.
"""

from __future__ import annotations

__all__ = ["boot_id", "boot_phases", "read_pressure_totals"]


def boot_phases() -> dict[str, float] | None:
    """Boot duration and phases: not read on macOS yet (see the module docstring)."""
    return None


def read_pressure_totals() -> dict[str, float] | None:
    """Cumulative seconds under pressure: macOS exposes no PSI equivalent here."""
    return None


def boot_id() -> str | None:
    """No boot id here: the boot sampler keys boots by their start time."""
    return None
