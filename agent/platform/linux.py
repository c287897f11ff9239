"""Linux backend: systemd-analyze and pressure stall information (PSI).

The parsers are pure functions on the text the OS prints, tested on recorded output; the
readers around them touch the system and return None when a source is missing (containers
without systemd, kernels without PSI): "no data" is not an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "boot_id",
    "boot_phases",
    "parse_duration_s",
    "parse_psi",
    "parse_systemd_analyze",
    "read_pressure_totals",
    "systemd_boot_phases",
]

_PHASE = re.compile(r"([0-9][0-9a-z. ]*?)\s+\((firmware|loader|kernel|initrd|userspace)\)")
_TOTAL = re.compile(r"=\s*([0-9][0-9a-z. ]*?)\s*(?:\n|$)")
_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(h|min|ms|us|µs|s)\b")
_UNIT_S = {"h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def parse_duration_s(text: str) -> float:
    """Seconds of a systemd time span such as ``1min 2.345s`` or ``945ms``."""
    parts = _UNIT.findall(text)
    if not parts:
        raise ValueError(f"not a systemd time span: {text!r}")
    return sum(float(value) * _UNIT_S[unit] for value, unit in parts)


def parse_systemd_analyze(text: str) -> dict[str, float] | None:
    """Boot phases in seconds from ``systemd-analyze`` output (None if boot is unfinished).

    Keys: ``firmware_s``, ``loader_s``, ``kernel_s``, ``initrd_s``, ``userspace_s`` (those
    present) and ``boot_duration_s`` (the total after ``=``).
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    if not first.startswith("Startup finished in"):
        return None
    phases = {f"{name}_s": parse_duration_s(span) for span, name in _PHASE.findall(first)}
    total = _TOTAL.search(first)
    if total:
        phases["boot_duration_s"] = parse_duration_s(total.group(1))
    elif phases:
        phases["boot_duration_s"] = sum(phases.values())
    return phases or None


def parse_psi(text: str) -> dict[str, dict[str, float]]:
    """A /proc/pressure/* file as ``{"some": {"avg10", "avg60", "avg300", "total"}, ...}``.

    ``total`` is in microseconds, cumulative since boot.
    """
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] not in ("some", "full"):
            continue
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        out[fields[0]] = {k: float(v) for k, v in values.items()}
    return out


def read_pressure_totals(root: Path = Path("/proc/pressure")) -> dict[str, float] | None:
    """Cumulative stall seconds (``some``) per resource: ``{"cpu", "memory", "io"}``."""
    totals: dict[str, float] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            parsed = parse_psi((root / resource).read_text())
        except OSError:
            continue
        if "some" in parsed and "total" in parsed["some"]:
            totals[resource] = parsed["some"]["total"] / 1e6
    return totals or None


def systemd_boot_phases(timeout_s: float = 5.0) -> dict[str, float] | None:
    """Boot phases from ``systemd-analyze time``; None where systemd is absent or booting."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None
    try:
        result = subprocess.run(
            [exe, "time"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return parse_systemd_analyze(result.stdout)


def boot_phases() -> dict[str, float] | None:
    """The backend interface's name for :func:`systemd_boot_phases`."""
    return systemd_boot_phases()


def boot_id() -> str | None:
    """The kernel's random id of the current boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None
