"""Windows backend (interim): boot time only, no boot phases, no pressure data.

Imported by :mod:`agent.platform` only on Windows. In this release the boot sampler reports
when the OS booted (from psutil, via the facade) with ``boot_kind: "unknown"`` and no
duration, and resource samples carry no ``*_pressure_s`` fields: missing data is left
out, never invented. The real backend (Diagnostics-Performance event 100 for the boot
phases ``main_path_s`` and ``post_boot_s``, hung windows, WER reports) is a later issue.
This module uses only the standard library so it can be imported (and its API checked)
on any OS.
"""

from __future__ import annotations

__all__ = ["boot_id", "boot_phases", "read_pressure_totals"]


def boot_phases() -> dict[str, float] | None:
    """Boot duration and phases: not read on Windows yet (see the module docstring)."""
    return None


def read_pressure_totals() -> dict[str, float] | None:
    """Cumulative seconds under pressure: Windows exposes no PSI equivalent here."""
    return None


def boot_id() -> str | None:
    """No boot id here: the boot sampler keys boots by their start time."""
    return None
