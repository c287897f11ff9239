"""macOS backend: DiagnosticReports, the unified log, InstallHistory.plist, sysctl.

Imported by :mod:`agent.platform` only on macOS, but standard library only and free of
macOS-only calls at import time, so it is imported and tested on any OS. The parsing lives
in :mod:`agent.platform.darwin_reports`; the readers here list report folders, read files
(bounded: at most :data:`MAX_REPORTS_PER_CALL` reports per call, none over
:data:`MAX_REPORT_BYTES`) and run ``log show`` / ``sysctl`` through a :data:`Runner` that tests
replace with recorded output.

What macOS does not give (so this backend reports nothing for it, rather than guessing):
cumulative pressure stall time (:func:`read_pressure_totals`), apps not responding right
now (:func:`hung_apps`, only private WindowServer APIs tell) and the focused app
(:func:`foreground_pid`, needs AppKit in the user's session, and the agent is a daemon).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.platform import darwin_reports as reports
from agent.platform.common import Harvest, HungApp, load_cursor

__all__ = [
    "LOG_EXE",
    "MAX_REPORTS_PER_CALL",
    "MAX_REPORT_BYTES",
    "Runner",
    "app_crashes_from",
    "app_hangs_from",
    "boot_id",
    "boot_phases",
    "boot_phases_from",
    "foreground_pid",
    "hung_apps",
    "log_show",
    "logons_from",
    "read_app_crashes",
    "read_app_hangs",
    "read_logons",
    "read_pressure_totals",
    "read_software_changes",
    "read_system_crashes",
    "report_dirs",
    "run_command",
    "software_changes_from",
    "system_crashes_from",
]

Runner = Callable[[Sequence[str]], str | None]
"""Runs a command (argv) and returns its standard output, or None when it failed."""

LOG_EXE = "/usr/bin/log"
MAX_REPORTS_PER_CALL = 100
"""Report files examined per call; the cursor carries on next time."""
MAX_REPORT_BYTES = 2 * 1024 * 1024
"""Crash and hang reports larger than this are skipped; of a panic report only this much is
read (its panic text comes before the large stackshot data)."""
_MAX_LOG_OUTPUT = 8 * 1024 * 1024
_SLACK_S = 300.0
"""Reports whose time is this close before the newest one read are checked again by name
(a report renamed into place keeps the time it was started)."""
_MAX_SEEN = 1000
_SYSTEM_REPORTS = Path("/Library/Logs/DiagnosticReports")
_INSTALL_HISTORY = Path("/Library/Receipts/InstallHistory.plist")
_MAX_PLIST_BYTES = 16 * 1024 * 1024

_LOGON_PREDICATE = (
    '(process == "SecurityAgent" AND eventMessage CONTAINS "loginwindow:success is being '
    'invoked") OR (process == "launchservicesd" AND eventMessage CONTAINS[c] "checkin" AND '
    'eventMessage CONTAINS[c] "com.apple.dock")'
)
_SHUTDOWN_PREDICATE = 'process == "kernel" AND eventMessage CONTAINS[c] "previous shutdown cause"'
_LOGIN_WINDOW_PREDICATE = (
    '(process == "loginwindow" AND eventMessage CONTAINS "Login Window Application Started")'
    ' OR ((process == "SecurityAgent" OR process == "authorizationhost") AND eventMessage '
    'CONTAINS "FVUnlock session")'
)


def run_command(argv: Sequence[str], timeout_s: float = 60.0) -> str | None:
    """Run ``argv`` and return its standard output (at most 8 MiB), or None if it could not
    run, failed or timed out."""
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout[:_MAX_LOG_OUTPUT]


def _on_macos() -> bool:
    return sys.platform == "darwin"


def log_show(predicate: str, start: datetime, run: Runner = run_command) -> list[dict[str, Any]]:
    """Unified-log records matching ``predicate`` from ``start`` on, oldest first:
    ``log show --style ndjson --info --start '<UTC time>' --predicate '<predicate>'``."""
    stamp = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+0000")
    argv = [LOG_EXE, "show", "--style", "ndjson", "--info", "--start", stamp]
    output = run([*argv, "--predicate", predicate])
    return reports.parse_ndjson(output) if output else []


def _iso(value: Any, default: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- DiagnosticReports -------------------------------------------------------------------


def report_dirs(home_root: Path = Path("/Users")) -> list[Path]:
    """The DiagnosticReports folders to read: the system's, and every user's (all of them
    when the agent runs as root, else the agent user's own)."""
    dirs = [_SYSTEM_REPORTS]
    try:
        homes = sorted(p for p in home_root.iterdir() if p.is_dir())
    except OSError:
        homes = [Path.home()]
    dirs += [h / "Library" / "Logs" / "DiagnosticReports" for h in homes]
    return [d for d in dirs if d.is_dir()]


_ReportParser = Callable[[Path, str, datetime], dict[str, Any] | None]


def _scan(
    cursor: str | None,
    since: datetime,
    dirs: Iterable[Path],
    suffixes: tuple[str, ...],
    parse: _ReportParser,
    *,
    truncate: bool = False,
) -> tuple[list[dict[str, Any]], str, int]:
    """New report files (by modification time, then name) parsed into events; the new
    cursor ``{"mtime": newest, "seen": {name: mtime}}``; and how many files were skipped as
    unreadable, oversized or malformed."""
    state = load_cursor(cursor)
    mark = float(state.get("mtime", since.timestamp()))
    seen: dict[str, float] = {
        k: float(v) for k, v in state.get("seen", {}).items() if isinstance(v, int | float)
    }
    floor = mark - _SLACK_S if state else since.timestamp()
    found: list[tuple[float, str, Path]] = []
    for folder in dirs:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for path in entries:
            if not path.name.endswith(suffixes) or path.name in seen:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if st.st_mtime >= floor and path.is_file():
                found.append((st.st_mtime, path.name, path))
    found.sort()
    events: list[dict[str, Any]] = []
    skipped = 0
    for mtime, name, path in found[:MAX_REPORTS_PER_CALL]:
        seen[name] = mtime
        mark = max(mark, mtime)
        try:
            size = path.stat().st_size
            if size > MAX_REPORT_BYTES and not truncate:
                skipped += 1
                continue
            with path.open("rb") as fh:
                text = fh.read(MAX_REPORT_BYTES).decode("utf-8", "replace")
        except OSError:
            skipped += 1
            continue
        try:
            event = parse(path, text, datetime.fromtimestamp(mtime, UTC))
        except (ValueError, KeyError, TypeError, AttributeError):
            event = None
            skipped += 1
        if event is not None:
            events.append(event)
    keep = {k: v for k, v in seen.items() if v >= mark - _SLACK_S}
    if len(keep) > _MAX_SEEN:
        keep = dict(sorted(keep.items(), key=lambda kv: kv[1])[-_MAX_SEEN:])
    return events, json.dumps({"mtime": mark, "seen": keep}), skipped


def _crash(path: Path, text: str, mtime: datetime) -> dict[str, Any] | None:
    header, body, _ = reports.parse_ips(text)
    return reports.crash_event(header, body, path.name, mtime)


def _hang(path: Path, text: str, mtime: datetime) -> dict[str, Any] | None:
    return reports.hang_event(text, path.name, mtime)


def _panic(path: Path, text: str, mtime: datetime) -> dict[str, Any] | None:
    return reports.panic_event(text, path.name, mtime)


def _degraded(skipped: int, dirs: Sequence[Path]) -> str | None:
    if not dirs:
        return "no DiagnosticReports folder found"
    if skipped:
        return f"{skipped} report(s) skipped: unreadable, over 2 MB or malformed"
    return None


def app_crashes_from(
    cursor: str | None, since: datetime, *, dirs: Sequence[Path] | None = None
) -> Harvest:
    """Application crashes from ``.ips`` crash reports (log type 309) in DiagnosticReports
    (the legacy ``.crash`` text reports of macOS 11 and older are not read)."""
    folders = report_dirs() if dirs is None else list(dirs)
    events, cursor_out, skipped = _scan(cursor, since, folders, (".ips",), _crash)
    return Harvest(events, cursor_out, "DiagnosticReports", _degraded(skipped, folders))


def read_app_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Application crashes on this Mac (see :func:`app_crashes_from`)."""
    return app_crashes_from(cursor, since)


def app_hangs_from(
    cursor: str | None, since: datetime, *, dirs: Sequence[Path] | None = None
) -> Harvest:
    """Application hangs from spindump's ``.hang`` and ``.spin`` reports, with the hang's
    ``Duration`` (written when an app stays unresponsive, or is force quit while hung)."""
    folders = report_dirs() if dirs is None else list(dirs)
    events, cursor_out, skipped = _scan(cursor, since, folders, (".hang", ".spin"), _hang)
    return Harvest(events, cursor_out, "DiagnosticReports", _degraded(skipped, folders))


def read_app_hangs(cursor: str | None, since: datetime) -> Harvest:
    """Application hangs on this Mac (see :func:`app_hangs_from`)."""
    return app_hangs_from(cursor, since)


def system_crashes_from(
    cursor: str | None,
    since: datetime,
    *,
    dirs: Sequence[Path] | None = None,
    run: Runner | None = None,
) -> Harvest:
    """Kernel panics (``.panic`` and ``.ips`` reports of log type 210) and abnormal shutdowns
    (the SMC's ``Previous shutdown cause`` in the unified log, Intel Macs only)."""
    state = load_cursor(cursor)
    folders = [_SYSTEM_REPORTS] if dirs is None else list(dirs)
    folders = [d for d in folders if d.is_dir()]
    events, reports_cursor, skipped = _scan(
        state.get("reports"), since, folders, (".panic", ".ips"), _panic, truncate=True
    )
    runner = run if run is not None else (run_command if _on_macos() else None)
    after = _iso(state.get("log"), since)
    newest = after
    sources = ["DiagnosticReports"]
    if runner is not None:
        sources.append("unifiedlog")
        for event in reports.shutdown_cause_events(log_show(_SHUTDOWN_PREDICATE, after, runner)):
            if event["ts"] > after:
                events.append(event)
                newest = max(newest, event["ts"])
    cursor_out = json.dumps({"reports": reports_cursor, "log": newest.isoformat()})
    degraded = _degraded(skipped, folders) if folders else "no DiagnosticReports folder found"
    return Harvest(events, cursor_out, "+".join(sources), degraded)


def read_system_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Kernel panics and abnormal shutdowns on this Mac (see :func:`system_crashes_from`)."""
    return system_crashes_from(cursor, since)


# --- Unified log: sign-ins ---------------------------------------------------------------


def logons_from(cursor: str | None, since: datetime, *, run: Runner | None = None) -> Harvest:
    """Sign-ins from the unified log (see :func:`agent.platform.darwin_reports.logon_events`
    for the records used and how precise the duration is).

    The cursor holds where the next ``log show`` starts (the start of a sign-in whose Dock
    has not checked in yet, else the newest record read) and the start of the newest sign-in
    reported, so none is reported twice.
    """
    runner = run if run is not None else (run_command if _on_macos() else None)
    if runner is None:
        return Harvest([], cursor, "none", "not macOS: no unified log")
    state = load_cursor(cursor)
    start = _iso(state.get("start"), since)
    done = _iso(state.get("done"), start - timedelta(microseconds=1))
    records = log_show(_LOGON_PREDICATE, start, runner)
    found, pending = reports.logon_events(records)
    events = []
    for event in found:
        started = event["ts"] - timedelta(seconds=event["logon_duration_s"])
        if started > done:
            events.append(event)
            done = max(done, started)
    times = [t for t in (reports.parse_log_time(str(r.get("timestamp", ""))) for r in records) if t]
    next_start = pending or max(times, default=start)
    cursor_out = json.dumps({"start": next_start.isoformat(), "done": done.isoformat()})
    return Harvest(events, cursor_out, "unifiedlog-loginwindow", None)


def read_logons(cursor: str | None, since: datetime) -> Harvest:
    """Sign-ins on this Mac (see :func:`logons_from`)."""
    return logons_from(cursor, since)


# --- InstallHistory.plist ----------------------------------------------------------------


def software_changes_from(
    cursor: str | None, since: datetime, *, path: Path = _INSTALL_HISTORY
) -> Harvest:
    """Installs, updates and OS patches from ``/Library/Receipts/InstallHistory.plist``.

    The whole history (at most 16 MiB) is read each time, so an update's ``version_from`` is
    the version last installed under the same name, however long ago; the cursor holds the
    newest entry's date and the keys of the entries at that date.
    """
    state = load_cursor(cursor)
    after = _iso(state.get("after"), since)
    done = [k for k in state.get("at", []) if isinstance(k, str)]
    try:
        if path.stat().st_size > _MAX_PLIST_BYTES:
            return Harvest([], cursor, "InstallHistory", "InstallHistory.plist over 16 MiB")
        entries = reports.parse_install_history(path.read_bytes())
    except OSError:
        return Harvest([], cursor, "none", "no /Library/Receipts/InstallHistory.plist")
    except ValueError:
        return Harvest([], cursor, "InstallHistory", "InstallHistory.plist is malformed")
    events, at_newest = reports.install_history_changes(entries, after, done)
    newest = max((e["date"] for e in entries if e["date"] >= after), default=after)
    cursor_out = json.dumps({"after": newest.isoformat(), "at": at_newest})
    return Harvest(events, cursor_out, "InstallHistory", None)


def read_software_changes(cursor: str | None, since: datetime) -> Harvest:
    """Software changes on this Mac (see :func:`software_changes_from`)."""
    return software_changes_from(cursor, since)


# --- Boot, pressure, live state ----------------------------------------------------------

_BOOTTIME = re.compile(r"sec\s*=\s*(\d+)(?:,\s*usec\s*=\s*(\d+))?")


def boot_id() -> str | None:
    """The kernel's id of this boot (``sysctl -n kern.bootsessionuuid``); None off macOS."""
    if not _on_macos():
        return None
    output = run_command(["/usr/sbin/sysctl", "-n", "kern.bootsessionuuid"], timeout_s=5.0)
    value = (output or "").strip()
    return value[:64] or None


def boot_phases_from(run: Runner) -> dict[str, Any] | None:
    """Boot duration from kernel start (``sysctl kern.boottime``) to the login window being
    up (the unified log's first ``Login Window Application Started`` of loginwindow, or with
    FileVault the ``FVUnlock session`` record of the pre-boot unlock screen, which comes
    first); None until the login window has appeared. macOS logs no firmware or kernel
    phases, so only ``boot_duration_s`` is given (firmware time before the kernel is not
    included); ``boot_kind`` is ``cold`` (waking from sleep or hibernation is not a boot).
    """
    raw = run(["/usr/sbin/sysctl", "-n", "kern.boottime"])
    match = _BOOTTIME.search(raw or "")
    if match is None:
        return None
    booted = datetime.fromtimestamp(int(match.group(1)) + int(match.group(2) or 0) / 1e6, UTC)
    for record in log_show(_LOGIN_WINDOW_PREDICATE, booted, run):
        ts = reports.parse_log_time(str(record.get("timestamp", "")))
        if ts is None:
            continue
        seconds = (ts - booted).total_seconds()
        if 0 <= seconds <= 7 * 86400:
            return {
                "boot_duration_s": round(seconds, 3),
                "boot_kind": "cold",
                "source": "unifiedlog-loginwindow",
            }
    return None


def boot_phases() -> dict[str, Any] | None:
    """Boot duration to the login window (see :func:`boot_phases_from`); None off macOS."""
    return boot_phases_from(run_command) if _on_macos() else None


def read_pressure_totals() -> dict[str, float] | None:
    """None: macOS has no cumulative stall counters like Linux PSI (``kern.memorystatus_vm_
    pressure_level`` is a momentary level, not time spent stalled)."""
    return None


def hung_apps() -> list[HungApp]:
    """Always empty: whether an app is "not responding" is known only to the WindowServer,
    through private APIs; hangs are reported from spindump's reports instead
    (:func:`read_app_hangs`)."""
    return []


def foreground_pid() -> int | None:
    """None: the frontmost app is known through AppKit (``NSWorkspace``) in the user's GUI
    session, which the agent (a launchd daemon, standard library only) does not have."""
    return None
