"""Windows backend: event logs through ``wevtutil``, hung windows through user32.

Imported by :mod:`agent.platform` only on Windows, yet importable anywhere: it uses the
standard library only, and every Windows-only import (``ctypes.windll``-style DLL loading,
``winreg``) happens inside the functions that need it, behind a ``sys.platform`` check.

Event logs are read by running ``wevtutil qe <log> /q:<XPath> /f:xml /e:Events /c:N`` (no
pywin32): the XPath selects the providers and event ids of one metric and either
``EventRecordID > N`` (N from the cursor) or, on the first read, ``TimeCreated >= since``.
The cursor is JSON: log name → last ``EventRecordID`` read, plus a few ``_``-prefixed
values used to avoid counting one crash twice across reads. The XML is parsed by the pure
functions of :mod:`agent.platform.windows_events`; the ``harvest_*`` functions take the
command runner as an argument, so tests run them on Linux with recorded XML.

What comes from where is listed in :mod:`agent.platform.windows_events` and docs/agent.md.
Not available here: pressure stall information (Windows has no PSI equivalent) and a boot id
(the boot sampler keys boots by their start time).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.platform.common import Harvest, HungApp, app_name_from_path
from agent.platform.windows_events import (
    CRASH_PAIR_WINDOW_S,
    UNINSTALL_STATE_KEY,
    WinEvent,
    app_crash_from,
    app_hang_from,
    boot_kind_from,
    boot_phases_from,
    build_query,
    dump_cursor,
    load_cursor,
    logon_from,
    merge_system_crashes,
    pair_app_crashes,
    pair_msi_updates,
    parse_events,
    parse_time,
    software_change_from,
    system_crash_from,
    uninstall_changes,
)

__all__ = [
    "APP_CRASH_SELECTOR",
    "APP_HANG_SELECTOR",
    "DIAGNOSTICS_LOG",
    "MAX_RECORDS",
    "SOFTWARE_APPLICATION_SELECTOR",
    "SOFTWARE_SYSTEM_SELECTOR",
    "SYSTEM_CRASH_SELECTOR",
    "UninstallReader",
    "WevtutilError",
    "WevtutilRunner",
    "boot_id",
    "boot_phases",
    "boot_phases_with",
    "decode_output",
    "foreground_pid",
    "harvest_app_crashes",
    "harvest_app_hangs",
    "harvest_logons",
    "harvest_software_changes",
    "harvest_system_crashes",
    "hung_apps",
    "read_app_crashes",
    "read_app_hangs",
    "read_logons",
    "read_pressure_totals",
    "read_software_changes",
    "read_system_crashes",
    "read_uninstall_keys",
    "run_wevtutil",
]

MAX_RECORDS = 500
"""At most this many records per log and read (``wevtutil /c:``); the rest come next time."""

DIAGNOSTICS_LOG = "Microsoft-Windows-Diagnostics-Performance/Operational"
"""Boot (event 100) performance records; client editions only (absent on Windows Server)."""

APP_CRASH_SELECTOR = (
    "(Provider[@Name='Application Error'] and EventID=1000)"
    " or (Provider[@Name='Windows Error Reporting'] and EventID=1001)"
)
"""Application log: Application Error 1000 and WER 1001 (APPCRASH is filtered when parsed)."""

APP_HANG_SELECTOR = "Provider[@Name='Application Hang'] and EventID=1002"
"""Application log: Application Hang 1002."""

SYSTEM_CRASH_SELECTOR = (
    "(Provider[@Name='Microsoft-Windows-WER-SystemErrorReporting'] and EventID=1001)"
    " or (Provider[@Name='Microsoft-Windows-Kernel-Power'] and EventID=41)"
    " or (Provider[@Name='EventLog'] and EventID=6008)"
)
"""System log: BugCheck 1001, Kernel-Power 41, EventLog 6008."""

SOFTWARE_SYSTEM_SELECTOR = (
    "(Provider[@Name='Microsoft-Windows-WindowsUpdateClient'] and EventID=19)"
    " or (Provider[@Name='Microsoft-Windows-UserPnp'] and EventID=20001)"
)
"""System log: update installed (WindowsUpdateClient 19), driver installed (UserPnp 20001)."""

SOFTWARE_APPLICATION_SELECTOR = "Provider[@Name='MsiInstaller'] and (EventID=1033 or EventID=1034)"
"""Application log: Windows Installer product installed (1033) / removed (1034)."""

_KERNEL_BOOT_SELECTOR = "Provider[@Name='Microsoft-Windows-Kernel-Boot'] and EventID=27"
_CREATE_NO_WINDOW = 0x08000000
_BOOT_SLACK = timedelta(minutes=1)

WevtutilRunner = Callable[[str, str, int, bool], str]
"""Runs one query: ``(log name, XPath, max records, newest first) -> XML text``."""


class WevtutilError(RuntimeError):
    """``wevtutil`` is missing, failed (e.g. the log does not exist) or timed out."""


def decode_output(raw: bytes) -> str:
    """wevtutil's output as text: UTF-16 when it carries a BOM or NUL bytes, else UTF-8
    (undecodable bytes replaced, never fatal)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    if len(raw) > 1 and raw[1:2] == b"\x00":
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def run_wevtutil(
    log_name: str,
    query: str,
    count: int = MAX_RECORDS,
    newest_first: bool = False,
    timeout_s: float = 30.0,
) -> str:
    """Run ``wevtutil qe <log_name> /q:<query> /f:xml /e:Events /c:<count>`` and return its
    XML (oldest first unless ``newest_first``); :class:`WevtutilError` on any failure."""
    exe = shutil.which("wevtutil")
    if exe is None:
        raise WevtutilError("wevtutil not found (not Windows?)")
    args = [exe, "qe", log_name, f"/q:{query}", "/f:xml", "/e:Events", f"/c:{int(count)}"]
    if newest_first:
        args.append("/rd:true")
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            creationflags=_CREATE_NO_WINDOW if sys.platform == "win32" else 0,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WevtutilError(f"wevtutil {log_name}: {exc}") from exc
    if result.returncode != 0:
        message = decode_output(result.stderr).strip().splitlines()
        raise WevtutilError(
            f"wevtutil {log_name}: exit {result.returncode}: {message[0] if message else ''}"
        )
    return decode_output(result.stdout)


def _last_id(state: dict[str, Any], log_name: str) -> int | None:
    value = state.get(log_name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _query(
    run: WevtutilRunner,
    log_name: str,
    selector: str,
    state: dict[str, Any],
    since: datetime,
) -> tuple[list[WinEvent], int]:
    """New records of one log (after the cursor's record id, else since ``since``); moves
    ``state[log_name]`` to the newest record id seen."""
    last = _last_id(state, log_name)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    events, skipped = parse_events(
        run(log_name, build_query(selector, last, since), MAX_RECORDS, False)
    )
    if last is not None:
        events = [e for e in events if e.record_id > last]
    else:
        events = [e for e in events if e.ts >= since]
    events.sort(key=lambda e: e.record_id)
    if events:
        state[log_name] = events[-1].record_id
    return events, skipped


def _harvest(
    events: list[dict[str, Any]],
    before: str,
    state: dict[str, Any],
    source: str,
    problems: list[str],
) -> Harvest:
    after = dump_cursor(state)
    return Harvest(
        events=events,
        cursor=after if state and after != before else None,
        source=source,
        degraded="; ".join(problems) or None,
    )


def _skipped(skipped: int, log_name: str) -> list[str]:
    return [f"{log_name}: {skipped} unreadable record(s) skipped"] if skipped else []


def harvest_app_crashes(cursor: str | None, since: datetime, run: WevtutilRunner) -> Harvest:
    """``app_crash`` events from the Application log (Application Error 1000; WER 1001
    APPCRASH only without a matching 1000, also across reads via the cursor)."""
    log_name, state = "Application", load_cursor(cursor)
    before = dump_cursor(state)
    try:
        records, skipped = _query(run, log_name, APP_CRASH_SELECTOR, state, since)
    except WevtutilError as exc:
        return Harvest(source=f"wevtutil:{log_name}", degraded=str(exc))
    pairs = [(e, c) for e in records if (c := app_crash_from(e, log_name)) is not None]
    recent = [
        (str(item[0]), float(item[1]))
        for item in state.get("_recent_1000", [])
        if isinstance(item, list) and len(item) == 2
    ]
    events = pair_app_crashes(pairs, recent)
    if records:
        newest = records[-1].ts.timestamp()
        state["_recent_1000"] = [
            [a, t]
            for a, t in recent
            + [(c["app_name"], e.ts.timestamp()) for e, c in pairs if e.event_id == 1000]
            if newest - t <= CRASH_PAIR_WINDOW_S
        ]
    return _harvest(events, before, state, f"wevtutil:{log_name}", _skipped(skipped, log_name))


def harvest_app_hangs(cursor: str | None, since: datetime, run: WevtutilRunner) -> Harvest:
    """``app_hang`` events from Application Hang 1002 records of the Application log."""
    log_name, state = "Application", load_cursor(cursor)
    before = dump_cursor(state)
    try:
        records, skipped = _query(run, log_name, APP_HANG_SELECTOR, state, since)
    except WevtutilError as exc:
        return Harvest(source=f"wevtutil:{log_name}", degraded=str(exc))
    events = [h for e in records if (h := app_hang_from(e, log_name)) is not None]
    return _harvest(events, before, state, f"wevtutil:{log_name}", _skipped(skipped, log_name))


def harvest_system_crashes(cursor: str | None, since: datetime, run: WevtutilRunner) -> Harvest:
    """``system_crash`` events from the System log, one per crash (BugCheck 1001, Kernel-Power
    41 and EventLog 6008 of one start-up merged; the last crash's time kept in the cursor)."""
    log_name, state = "System", load_cursor(cursor)
    before = dump_cursor(state)
    try:
        records, skipped = _query(run, log_name, SYSTEM_CRASH_SELECTOR, state, since)
    except WevtutilError as exc:
        return Harvest(source=f"wevtutil:{log_name}", degraded=str(exc))
    last: datetime | None = None
    if isinstance(state.get("_last_crash"), str):
        try:
            last = parse_time(state["_last_crash"])
        except ValueError:
            last = None
    crashes = [c for e in records if (c := system_crash_from(e, log_name)) is not None]
    events = merge_system_crashes(crashes, last)
    newest = max([c["ts"] for c in crashes] + ([last] if last else []), default=None)
    if newest is not None:
        state["_last_crash"] = newest.isoformat()
    return _harvest(events, before, state, f"wevtutil:{log_name}", _skipped(skipped, log_name))


UninstallReader = Callable[[], dict[str, dict[str, str]]]
"""Reads the Uninstall keys: key name -> ``{"name", "version", "publisher", "msi"}``."""

_UNINSTALL_ROOTS = (
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
    r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
)


def read_uninstall_keys() -> dict[str, dict[str, str]]:  # pragma: no cover - Windows only
    """The machine-wide installed programs (HKLM Uninstall keys, 64- and 32-bit views):
    display name, version, publisher and whether Windows Installer owns the entry. System
    components and entries without a display name are skipped; per-user installs (HKCU of
    each profile) are not read by the service. Empty on other OSes."""
    if sys.platform != "win32":
        return {}
    import winreg

    out: dict[str, dict[str, str]] = {}
    for root in _UNINSTALL_ROOTS:
        try:
            parent = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, root)
        except OSError:
            continue
        with parent:
            index = 0
            while True:
                try:
                    name = winreg.EnumKey(parent, index)
                except OSError:
                    break
                index += 1
                try:
                    with winreg.OpenKey(parent, name) as key:
                        values = {}
                        for value in ("DisplayName", "DisplayVersion", "Publisher",
                                      "WindowsInstaller", "SystemComponent"):  # fmt: skip
                            try:
                                values[value] = str(winreg.QueryValueEx(key, value)[0])
                            except OSError:
                                continue
                except OSError:
                    continue
                if not values.get("DisplayName") or values.get("SystemComponent") == "1":
                    continue
                out[f"{root.split(chr(92))[1]}\\{name}"] = {
                    "name": values["DisplayName"],
                    "version": values.get("DisplayVersion", ""),
                    "publisher": values.get("Publisher", ""),
                    "msi": values.get("WindowsInstaller", "0"),
                }
    return out


def harvest_software_changes(
    cursor: str | None,
    since: datetime,
    run: WevtutilRunner,
    read_registry: UninstallReader = read_uninstall_keys,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Harvest:
    """``software_change`` events: Windows Update 19 and UserPnp 20001 (System log), MSI
    1033 / 1034 (Application log; an upgrade's removal + installation merged into ``update``),
    and the changes between two snapshots of the Uninstall keys (installers that log nothing;
    see :func:`agent.platform.windows_events.uninstall_changes`)."""
    state = load_cursor(cursor)
    before = dump_cursor(state)
    snapshot = read_registry()
    previous = state.get(UNINSTALL_STATE_KEY)
    registry_events = uninstall_changes(
        previous if isinstance(previous, dict) else None, snapshot, now()
    )
    if snapshot or previous is not None:
        state[UNINSTALL_STATE_KEY] = snapshot
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    for log_name, selector in (
        ("System", SOFTWARE_SYSTEM_SELECTOR),
        ("Application", SOFTWARE_APPLICATION_SELECTOR),
    ):
        try:
            records, skipped = _query(run, log_name, selector, state, since)
        except WevtutilError as exc:
            problems.append(str(exc))
            continue
        problems += _skipped(skipped, log_name)
        events += [c for e in records if (c := software_change_from(e, log_name)) is not None]
    events = pair_msi_updates(events) + registry_events
    return _harvest(events, before, state, "wevtutil:System+Application+registry", problems)


def harvest_logons(cursor: str | None, since: datetime, run: WevtutilRunner) -> Harvest:
    """``logon`` events from Diagnostics-Performance 100 (the sign-in after each boot; see
    :func:`agent.platform.windows_events.logon_from` for what is and is not measured)."""
    log_name, state = DIAGNOSTICS_LOG, load_cursor(cursor)
    before = dump_cursor(state)
    try:
        records, skipped = _query(run, log_name, "EventID=100", state, since)
    except WevtutilError as exc:
        return Harvest(source=f"wevtutil:{log_name}", degraded=str(exc))
    events = [g for e in records if (g := logon_from(e, log_name)) is not None]
    return _harvest(events, before, state, f"wevtutil:{log_name}", _skipped(skipped, log_name))


def boot_phases_with(run: WevtutilRunner) -> dict[str, Any] | None:
    """Boot figures of the current boot from the newest Diagnostics-Performance 100, with the
    boot kind of the newest Kernel-Boot 27 (System log). None when the log is missing, or when
    the newest 100 is older than the newest 27: this boot's record is not written yet (it comes
    minutes after the desktop is idle) or this start was a resume, which logs no 100."""
    try:
        performance, _ = parse_events(run(DIAGNOSTICS_LOG, "*[System[EventID=100]]", 1, True))
    except WevtutilError:
        return None
    if not performance:
        return None
    try:
        kernel, _ = parse_events(run("System", f"*[System[{_KERNEL_BOOT_SELECTOR}]]", 1, True))
    except WevtutilError:
        kernel = []
    boot = kernel[0] if kernel else None
    newest = performance[0]
    if boot is not None and newest.ts < boot.ts - _BOOT_SLACK:
        return None
    return boot_phases_from(newest, boot_kind_from(boot))


def boot_phases() -> dict[str, Any] | None:
    """``boot_duration_s``, ``main_path_s``, ``post_boot_s``, ``boot_kind`` and ``source`` of
    the current boot (see :func:`boot_phases_with`); None where wevtutil is absent."""
    if shutil.which("wevtutil") is None:
        return None
    return boot_phases_with(run_wevtutil)


def read_pressure_totals() -> dict[str, float] | None:
    """Cumulative seconds under pressure: Windows exposes no PSI equivalent, so None."""
    return None


def boot_id() -> str | None:
    """No boot id here: the boot sampler keys boots by their start time."""
    return None


def read_logons(cursor: str | None, since: datetime) -> Harvest:
    """Sign-ins after boots (Diagnostics-Performance 100), see :func:`harvest_logons`."""
    return harvest_logons(cursor, since, run_wevtutil)


def read_app_hangs(cursor: str | None, since: datetime) -> Harvest:
    """Application hangs (Application Hang 1002), see :func:`harvest_app_hangs`."""
    return harvest_app_hangs(cursor, since, run_wevtutil)


def read_app_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Application crashes (Application Error 1000, WER 1001), see :func:`harvest_app_crashes`."""
    return harvest_app_crashes(cursor, since, run_wevtutil)


def read_system_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Bugchecks and unexpected shutdowns, see :func:`harvest_system_crashes`."""
    return harvest_system_crashes(cursor, since, run_wevtutil)


def read_software_changes(cursor: str | None, since: datetime) -> Harvest:
    """Updates, drivers, MSI installs and removals, see :func:`harvest_software_changes`."""
    return harvest_software_changes(cursor, since, run_wevtutil)


def _process_name(pid: int) -> str | None:
    """The executable file name (no directories) of ``pid``, or None without access."""
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.QueryFullProcessImageNameW.argtypes = (
        wintypes.HANDLE,
        wintypes.DWORD,
        wintypes.LPWSTR,
        ctypes.POINTER(wintypes.DWORD),
    )
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return None
    try:
        buffer = ctypes.create_unicode_buffer(32768)
        size = wintypes.DWORD(len(buffer))
        if not kernel32.QueryFullProcessImageNameW(handle, 0, buffer, ctypes.byref(size)):
            return None
        return app_name_from_path(buffer.value) or None
    finally:
        kernel32.CloseHandle(handle)


def hung_apps() -> list[HungApp]:
    """Applications with a visible window Windows calls "not responding" right now
    (``EnumWindows`` + ``IsWindowVisible`` + ``IsHungAppWindow``; process from
    ``GetWindowThreadProcessId``, exe file name from ``QueryFullProcessImageNameW``).

    Windows only sees the windows of its own desktop: run as a service (session 0) this finds
    no user windows and returns []; it works when the agent runs in the user's session. No
    window titles are read.
    """
    if sys.platform != "win32":
        return []
    import ctypes
    from ctypes import wintypes

    user32 = ctypes.WinDLL("user32", use_last_error=True)
    user32.IsWindowVisible.argtypes = (wintypes.HWND,)
    user32.IsHungAppWindow.argtypes = (wintypes.HWND,)
    user32.GetWindowThreadProcessId.argtypes = (wintypes.HWND, ctypes.POINTER(wintypes.DWORD))
    pids: set[int] = set()
    callback_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.HWND, wintypes.LPARAM)

    def visit(hwnd: Any, _param: Any) -> bool:
        if user32.IsWindowVisible(hwnd) and user32.IsHungAppWindow(hwnd):
            pid = wintypes.DWORD()
            user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
            if pid.value:
                pids.add(int(pid.value))
        return True

    user32.EnumWindows(callback_type(visit), 0)
    apps = []
    for pid in sorted(pids):
        name = _process_name(pid)
        if name:
            apps.append(HungApp(pid=pid, app_name=name, reason="window_not_responding"))
    return apps


def foreground_pid() -> int | None:
    """The process owning the focused window (``GetForegroundWindow`` +
    ``GetWindowThreadProcessId``); None in session 0 (a service has no foreground window)
    or off Windows."""
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    user32 = ctypes.WinDLL("user32", use_last_error=True)
    user32.GetForegroundWindow.restype = wintypes.HWND
    user32.GetWindowThreadProcessId.argtypes = (wintypes.HWND, ctypes.POINTER(wintypes.DWORD))
    hwnd = user32.GetForegroundWindow()
    if not hwnd:
        return None
    pid = wintypes.DWORD()
    user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
    return int(pid.value) or None
