"""The one facade over the operating system (the only agent module importing psutil).

OS-specific code sits in one backend module per OS (``linux.py``, ``windows.py``,
``darwin.py``), each exposing ``boot_id()``, ``boot_phases()`` and
``read_pressure_totals()``; only the running OS's backend is imported. Windows and macOS
backends are interim in this release (boot time only, see their docstrings).
"""

from __future__ import annotations

import os
import platform as _platform
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

if sys.platform.startswith("linux"):
    from agent.platform import linux as _backend
elif sys.platform == "win32":  # pragma: no cover - Windows builds
    from agent.platform import windows as _backend  # type: ignore[no-redef]
elif sys.platform == "darwin":  # pragma: no cover - macOS builds
    from agent.platform import darwin as _backend  # type: ignore[no-redef]
else:  # pragma: no cover
    raise ImportError(f"DexScope agent does not support {sys.platform}")

__all__ = [
    "MemoryInfo",
    "OwnProcess",
    "boot_id",
    "boot_phases",
    "boot_time",
    "cpu_percent",
    "disk_percent",
    "hardware",
    "hostname",
    "memory",
    "os_name",
    "os_version",
    "pressure_totals",
]


def os_name() -> Literal["linux", "windows", "macos"]:
    """``linux``, ``windows`` or ``macos`` (the wire's names)."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def os_version() -> str:
    """The OS release (kernel release on Linux, build on Windows, version on macOS)."""
    if sys.platform == "darwin":  # pragma: no cover
        return _platform.mac_ver()[0]
    return _platform.release() if sys.platform.startswith("linux") else _platform.version()


def hostname() -> str:
    """This machine's host name."""
    return socket.gethostname()


def hardware() -> dict[str, Any]:
    """Hardware facts sent at enrollment (no serial numbers, nothing personal)."""
    facts: dict[str, Any] = {
        "cpu_count": psutil.cpu_count(logical=True),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "arch": _platform.machine(),
    }
    model = Path("/sys/class/dmi/id/product_name")
    try:
        name = model.read_text().strip()
        if name:
            facts["model"] = name[:128]
    except OSError:
        pass
    return facts


def boot_time() -> datetime:
    """When the OS booted (UTC)."""
    return datetime.fromtimestamp(psutil.boot_time(), UTC)


def boot_id() -> str | None:
    """An id unique to the current boot, where the OS has one."""
    return _backend.boot_id()


def boot_phases() -> dict[str, float] | None:
    """Boot phases and total in seconds (``boot_duration_s``, ``kernel_s``, …) if known."""
    return _backend.boot_phases()


def pressure_totals() -> dict[str, float] | None:
    """Cumulative seconds under CPU / memory / IO pressure, where the OS exposes it."""
    return _backend.read_pressure_totals()


def cpu_percent(block_s: float | None = None) -> float:
    """System CPU use since the previous call (or over ``block_s`` seconds)."""
    return float(psutil.cpu_percent(interval=block_s))


@dataclass(frozen=True)
class MemoryInfo:
    """Memory and swap use."""

    percent: float
    available_mb: float
    swap_percent: float


def memory() -> MemoryInfo:
    """Current memory and swap use."""
    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return MemoryInfo(float(vm.percent), vm.available / 2**20, float(swap.percent))


def disk_percent() -> float | None:
    """Use of the system drive in percent."""
    root = os.environ.get("SYSTEMDRIVE", "C:") + "\\" if sys.platform == "win32" else "/"
    try:
        return float(psutil.disk_usage(root).percent)
    except OSError:
        return None


class OwnProcess:
    """The agent's own footprint (CPU since the previous call, RSS)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)

    def cpu_percent(self) -> float:
        """CPU use of the agent since the previous call (100 = one core)."""
        return float(self._proc.cpu_percent(None))

    def rss_mb(self) -> float:
        """Resident memory of the agent in MiB."""
        return float(self._proc.memory_info().rss / 2**20)
