"""The one facade over the operating system (the only agent module importing psutil).

OS-specific code sits in one backend module per OS (``linux.py``, ``windows.py``,
``darwin.py``); only the running OS's backend is imported. Each exposes the functions named
in :data:`BACKEND_FUNCTIONS`, with the same signatures (a test checks it):

- ``boot_id()``, ``boot_phases()`` (durations under their wire names, optionally
  ``boot_kind`` and ``source``), ``read_pressure_totals()``;
- ``read_logons``, ``read_app_hangs``, ``read_app_crashes``, ``read_system_crashes``,
  ``read_software_changes``: each ``(cursor: str | None, since: datetime) -> Harvest``
  (see :mod:`agent.platform.common`);
- ``hung_apps() -> list[HungApp]`` (applications not responding right now) and
  ``foreground_pid() -> int | None`` (the process owning the focused window, where the OS
  tells without special rights).
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

from agent.platform.common import Harvest, HungApp

if sys.platform.startswith("linux"):
    from agent.platform import linux as _backend
elif sys.platform == "win32":  # pragma: no cover - Windows builds
    from agent.platform import windows as _backend  # type: ignore[no-redef]
elif sys.platform == "darwin":  # pragma: no cover - macOS builds
    from agent.platform import darwin as _backend  # type: ignore[no-redef]
else:  # pragma: no cover
    raise ImportError(f"DexScope agent does not support {sys.platform}")

__all__ = [
    "BACKEND_FUNCTIONS",
    "Harvest",
    "HungApp",
    "MemoryInfo",
    "OwnProcess",
    "ProcessSample",
    "boot_id",
    "boot_phases",
    "boot_time",
    "cpu_percent",
    "disk_percent",
    "foreground_pid",
    "hardware",
    "hostname",
    "hung_apps",
    "lower_priority",
    "memory",
    "os_name",
    "os_version",
    "pid_exists",
    "pressure_totals",
    "process_name",
    "process_samples",
    "read_app_crashes",
    "read_app_hangs",
    "read_logons",
    "read_software_changes",
    "read_system_crashes",
]


BACKEND_FUNCTIONS = (
    "boot_id",
    "boot_phases",
    "read_pressure_totals",
    "read_logons",
    "read_app_hangs",
    "read_app_crashes",
    "read_system_crashes",
    "read_software_changes",
    "hung_apps",
    "foreground_pid",
)
"""What every OS backend module provides."""


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


def boot_phases() -> dict[str, Any] | None:
    """Boot phases and total in seconds (``boot_duration_s``, ``kernel_s``, …) if known,
    with ``boot_kind`` and ``source`` where the backend knows them."""
    return _backend.boot_phases()


def read_logons(cursor: str | None, since: datetime) -> Harvest:
    """Sign-ins recorded by the OS after ``cursor`` (or after ``since`` the first time)."""
    return _backend.read_logons(cursor, since)


def read_app_hangs(cursor: str | None, since: datetime) -> Harvest:
    """Application hangs the OS recorded (Windows event 1002, macOS hang reports)."""
    return _backend.read_app_hangs(cursor, since)


def read_app_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Application crashes the OS recorded."""
    return _backend.read_app_crashes(cursor, since)


def read_system_crashes(cursor: str | None, since: datetime) -> Harvest:
    """System crashes and unexpected shutdowns the OS recorded."""
    return _backend.read_system_crashes(cursor, since)


def read_software_changes(cursor: str | None, since: datetime) -> Harvest:
    """Installs, updates, removals, OS patches and driver changes the OS recorded."""
    return _backend.read_software_changes(cursor, since)


def hung_apps() -> list[HungApp]:
    """Applications not responding at this moment."""
    return _backend.hung_apps()


def pid_exists(pid: int) -> bool:
    """Whether a process with this id is running."""
    return bool(psutil.pid_exists(pid))


def foreground_pid() -> int | None:
    """The process owning the focused window, or None where the OS does not say."""
    return _backend.foreground_pid()


@dataclass(frozen=True)
class ProcessSample:
    """One process at one moment: executable name (never path or command line), CPU seconds
    used so far (user + system), resident memory, start time (epoch seconds)."""

    pid: int
    name: str
    cpu_s: float
    rss_bytes: int
    started: float


def process_samples() -> list[ProcessSample]:
    """Every user process now (kernel threads, and processes that vanish or deny access
    mid-read, are skipped)."""
    out: list[ProcessSample] = []
    for proc in psutil.process_iter(["name", "cpu_times", "memory_info", "create_time"]):
        info = proc.info
        memory, times = info.get("memory_info"), info.get("cpu_times")
        if not info.get("name") or memory is None or times is None or memory.rss == 0:
            continue
        out.append(
            ProcessSample(
                pid=proc.pid,
                name=str(info["name"])[:256],
                cpu_s=float(times.user + times.system),
                rss_bytes=int(memory.rss),
                started=float(info.get("create_time") or 0.0),
            )
        )
    return out


def process_name(pid: int) -> str | None:
    """The executable name of ``pid``, or None if it is gone or hidden."""
    try:
        return str(psutil.Process(pid).name())[:256]
    except psutil.Error:
        return None


def lower_priority() -> None:
    """Run the agent below normal priority (nice 10 / BELOW_NORMAL_PRIORITY_CLASS)."""
    proc = psutil.Process()
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows builds
            proc.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
        elif proc.nice() < 10:
            proc.nice(10)
    except (psutil.Error, OSError):  # pragma: no cover - lacking rights is not fatal
        pass


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

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the agent used since it started."""
        times = self._proc.cpu_times()
        return float(times.user + times.system)
