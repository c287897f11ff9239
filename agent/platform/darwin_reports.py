"""Pure parsers of macOS diagnostic sources, turned into wire events.

Nothing here touches the system, so every function runs on recorded fixtures on any OS; the
readers that feed them live in :mod:`agent.platform.darwin`.

Sources and formats:

- ``.ips`` reports (macOS 12+) in ``DiagnosticReports``: a one-line JSON header (``bug_type``,
  ``app_name``, ``app_version``, ``bundleID``, ``timestamp``, ``incident_id``…) followed by a
  JSON body. Apple's log types used here: ``309`` crash (body: ``exception`` {``type``,
  ``signal``, ``codes``}, ``faultingThread`` index into ``threads``, frames with
  ``imageIndex`` into ``usedImages``), ``210`` kernel panic (body: ``panicString`` on Apple
  silicon, ``macOSPanicString`` on Intel).
- ``.hang`` / ``.spin`` reports written by spindump (log types 12 and 11): text
  ``Key: value`` lines (``Date/Time``, ``Command``, ``Version``, ``Event: hang``,
  ``Duration: 9.56s``), sometimes after a JSON header line.
- ``.panic`` files: the ``.ips`` layout with log type 210 (or, before macOS 10.15, plain text
  starting with ``panic(cpu …``).
- ``log show --style ndjson`` records (one JSON object per line: ``timestamp``,
  ``eventMessage``, ``processImagePath``, ``subsystem``, ``bootUUID``…).
- ``/Library/Receipts/InstallHistory.plist``: an array of dicts (``date``, ``displayName``,
  ``displayVersion``, ``packageIdentifiers``, ``processName``, ``contentType``).

Privacy: app names are process or bundle names only; paths (which hold user folders),
thread names, command lines and document names are never copied into an event.
"""

from __future__ import annotations

import json
import plistlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.parsers.expat import ExpatError

from agent.platform.common import stable_event_id

__all__ = [
    "CRASH_BUG_TYPES",
    "HANG_BUG_TYPES",
    "PANIC_BUG_TYPES",
    "SHUTDOWN_CAUSES",
    "crash_event",
    "hang_event",
    "install_history_changes",
    "logon_events",
    "panic_event",
    "parse_install_history",
    "parse_ips",
    "parse_log_time",
    "parse_ndjson",
    "parse_report_time",
    "parse_text_fields",
    "shutdown_cause_events",
]

CRASH_BUG_TYPES = frozenset({"309"})
"""``.ips`` log types of application crash reports (``109`` is the pre-macOS 12 text form)."""
PANIC_BUG_TYPES = frozenset({"210"})
"""``.ips`` / ``.panic`` log type of kernel panic reports."""
HANG_BUG_TYPES = frozenset({"11", "12"})
"""Log types of spindump's spin and hang reports (``.spin``, ``.hang``)."""

SHUTDOWN_CAUSES: Mapping[int, str] = {
    0: "power lost",
    3: "forced by holding the power button",
    -3: "temperature sensors above limit",
    -60: "bad master directory block (disk error)",
    -61: "watchdog: system unresponsive",
    -62: "watchdog: system unresponsive",
    -71: "memory temperature above limit",
    -74: "battery temperature above limit",
    -86: "proximity temperature above limit",
    -95: "CPU temperature above limit",
    -100: "power supply temperature above limit",
    -104: "battery failure",
    -128: "hardware shutdown, cause unknown",
}
"""What the SMC's ``Previous shutdown cause`` codes mean (not documented by Apple; the
codes commonly reported by Apple support staff and admins). ``5`` is a normal shut down."""

_PANIC_DETAIL_MAX = 300
_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_USER_DIR = re.compile(r"/Users/[^/\s\"']+")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*s\b")
_SHUTDOWN = re.compile(r"previous shutdown cause:\s*(-?\d+)", re.IGNORECASE)
_MAX_SIGN_IN_S = 600.0


def parse_report_time(text: str) -> datetime | None:
    """An aware UTC datetime from the times Apple's reports and ``log show`` print
    (``2023-05-10 09:12:01.00 +0200``, ``2024-01-15 10:30:00.000000-0800``); None if the text
    is not such a time or carries no UTC offset."""
    match = _TIME.match(text.strip())
    if match is None or match.group(4) is None:
        return None
    day, clock, frac, zone = match.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    if ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}").astimezone(UTC)
    except ValueError:
        return None


parse_log_time = parse_report_time
"""``log show`` record times use the same layout (``2024-01-15 10:30:00.000000-0800``)."""


def parse_ips(text: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """Split an ``.ips`` report into its JSON header, its JSON body (None when the body is
    not JSON: spindump text, or a truncated file) and the raw body text.

    Raises ``ValueError`` when the first line is not a JSON object (not an ``.ips`` file).
    """
    first, _, rest = text.partition("\n")
    header = json.loads(first)
    if not isinstance(header, dict):
        raise ValueError("the .ips header is not a JSON object")
    body: dict[str, Any] | None = None
    if rest.lstrip().startswith("{"):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
    return header, body, rest


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _scrub(text: str) -> str:
    """Remove user folder names from free text (``/Users/alice/...`` → ``/Users/…``)."""
    return _USER_DIR.sub("/Users/…", text)


def crash_event(
    header: Mapping[str, Any], body: Mapping[str, Any] | None, key: str, fallback_ts: datetime
) -> dict[str, Any] | None:
    """An ``app_crash`` event from a crash ``.ips`` report (log type 309), else None.

    ``app_name`` is the header's ``app_name`` (the process name; ``procName`` of the body or
    the header's ``name`` if absent); ``exception_code`` is ``TYPE (SIGNAL)`` as Console
    shows it; ``faulting_module`` the image (file name only) of frame 0 of the faulting
    thread. ``key`` identifies the report when it has no ``incident_id``.
    """
    if str(header.get("bug_type", "")) not in CRASH_BUG_TYPES:
        return None
    body = body or {}
    name = (
        _text(header.get("app_name"), 256)
        or _text(body.get("procName"), 256)
        or _text(header.get("name"), 256)
    )
    if not name:
        return None
    ts = parse_report_time(str(header.get("timestamp", ""))) or fallback_ts
    incident = _text(header.get("incident_id"), 64) or _text(body.get("incident"), 64) or key
    event: dict[str, Any] = {
        "event_id": stable_event_id("DiagnosticReports", incident),
        "ts": ts,
        "type": "app_crash",
        "app_name": name,
        "source": "DiagnosticReports",
    }
    version = _text(header.get("app_version"), 128)
    if version:
        event["app_version"] = version
    exception = body.get("exception")
    if isinstance(exception, Mapping):
        kind, sig = _text(exception.get("type"), 40), _text(exception.get("signal"), 20)
        code = f"{kind} ({sig})" if kind and sig else kind or sig
        if code:
            event["exception_code"] = code[:64]
    module = _faulting_module(body)
    if module:
        event["faulting_module"] = module
    return event


def _faulting_module(body: Mapping[str, Any]) -> str:
    threads, images = body.get("threads"), body.get("usedImages")
    index = body.get("faultingThread")
    if not isinstance(threads, list) or not isinstance(images, list):
        return ""
    if not isinstance(index, int) or not 0 <= index < len(threads):
        index = next(
            (i for i, t in enumerate(threads) if isinstance(t, dict) and t.get("triggered")), -1
        )
        if index < 0:
            return ""
    thread = threads[index]
    frames = thread.get("frames") if isinstance(thread, dict) else None
    if not isinstance(frames, list) or not frames or not isinstance(frames[0], dict):
        return ""
    image_index = frames[0].get("imageIndex")
    if not isinstance(image_index, int) or not 0 <= image_index < len(images):
        return ""
    image = images[image_index]
    if not isinstance(image, dict):
        return ""
    name = _text(image.get("name"), 256)
    if not name:
        path = _text(image.get("path"), 4096)
        name = path.rsplit("/", 1)[-1][:256]
    return name


def parse_text_fields(text: str, limit: int = 200) -> dict[str, str]:
    """The ``Key: value`` fields at the top of a spindump or legacy report (first
    occurrence of each key, within the first ``limit`` lines). A leading JSON header line is
    skipped."""
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines()[:limit]):
        if number == 0 and line.lstrip().startswith("{"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name.startswith(" ") or len(name) > 40:
            continue
        fields.setdefault(name.strip(), value.strip())
    return fields


def hang_event(text: str, key: str, fallback_ts: datetime) -> dict[str, Any] | None:
    """An ``app_hang`` event from a spindump ``.hang`` / ``.spin`` report, else None.

    The app is ``Command`` (the process name), its version the first word of ``Version``
    (``16.72 (23040900)`` → ``16.72``). ``hang_duration_s`` is the report's ``Duration``
    (how long the app was unresponsive, sampling included; ``Duration Sampled`` is only the
    sampled part). ``ts`` is ``Date/Time``. A report without ``Event: hang`` or without a
    duration is not an app hang and gives no event.
    """
    fields = parse_text_fields(text)
    if fields.get("Event", "").lower() != "hang":
        return None
    name = fields.get("Command", "")[:256]
    duration = _DURATION.match(fields.get("Duration", ""))
    if not name or duration is None:
        return None
    seconds = float(duration.group(1))
    if not 0 <= seconds <= 7 * 86400:
        return None
    incident = fields.get("Incident Identifier", "")[:64] or key
    event: dict[str, Any] = {
        "event_id": stable_event_id("DiagnosticReports", incident),
        "ts": parse_report_time(fields.get("Date/Time", "")) or fallback_ts,
        "type": "app_hang",
        "app_name": name,
        "hang_duration_s": seconds,
        "source": "DiagnosticReports",
    }
    version = fields.get("Version", "").split(" ", 1)[0]
    if version and "?" not in version:
        event["app_version"] = version[:128]
    return event


_PANIC_STRING = re.compile(r'"(macOSPanicString|panicString)"\s*:\s*("(?:[^"\\]|\\.)*")')


def _panic_string(body: Mapping[str, Any] | None, raw: str) -> str:
    found: dict[str, str] = {}
    if body is not None:
        for key in ("macOSPanicString", "panicString"):
            value = body.get(key)
            if isinstance(value, str):
                found[key] = value
    else:  # a body cut short (the stackshot data at its end is large): find the strings
        for match in _PANIC_STRING.finditer(raw[: 512 * 1024]):
            try:
                found.setdefault(match.group(1), json.loads(match.group(2)))
            except ValueError:
                continue
    for key in ("macOSPanicString", "panicString"):
        value = found.get(key, "").strip()
        if value and value != "not yet set":
            return value
    return ""


def panic_event(text: str, key: str, fallback_ts: datetime) -> dict[str, Any] | None:
    """A ``system_crash`` (``kernel_panic``) event from a panic report, else None.

    ``.ips`` / ``.panic`` files of log type 210 carry the panic text in ``macOSPanicString``
    (Intel) or ``panicString`` (Apple silicon); older ``.panic`` files are that text itself.
    ``detail`` is the panic text's first line (``panic(cpu 0 caller 0x…): …``), user folder
    names removed, at most 300 characters.
    """
    header: dict[str, Any] = {}
    try:
        header, body, raw = parse_ips(text)
    except ValueError:
        if not text.lstrip().startswith("panic("):
            return None
        body, raw, panic_text = None, text, text.strip()
    else:
        if str(header.get("bug_type", "")) not in PANIC_BUG_TYPES:
            return None
        panic_text = _panic_string(body, raw)
    when = parse_report_time(str(header.get("timestamp", "")))
    if when is None and body is not None:
        when = parse_report_time(str(body.get("date", "")))
    incident = _text(header.get("incident_id"), 64) or key
    event: dict[str, Any] = {
        "event_id": stable_event_id("DiagnosticReports", incident),
        "ts": when or fallback_ts,
        "type": "system_crash",
        "crash_kind": "kernel_panic",
        "source": "DiagnosticReports",
    }
    first = panic_text.splitlines()[0].strip() if panic_text else ""
    if first:
        event["detail"] = _scrub(first)[:_PANIC_DETAIL_MAX]
    return event


def parse_ndjson(text: str) -> list[dict[str, Any]]:
    """The records of ``log show --style ndjson`` output (lines that are not JSON objects
    with an ``eventMessage``, such as a trailing summary, are skipped)."""
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("eventMessage"), str):
            records.append(record)
    return records


def _process(record: Mapping[str, Any]) -> str:
    path = record.get("processImagePath")
    return path.rsplit("/", 1)[-1] if isinstance(path, str) else ""


def _is_credentials_accepted(record: Mapping[str, Any]) -> bool:
    return _process(record) == "SecurityAgent" and "loginwindow:success is being invoked" in str(
        record.get("eventMessage", "")
    )


def _is_dock_checkin(record: Mapping[str, Any]) -> bool:
    message = str(record.get("eventMessage", "")).lower()
    return (
        _process(record) == "launchservicesd"
        and "checkin" in message
        and "com.apple.dock" in message
    )


def logon_events(
    records: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], datetime | None]:
    """``logon`` events from unified-log records, and the start of a sign-in still pending.

    A sign-in starts when SecurityAgent runs the ``loginwindow:success`` mechanism (the
    console login right was granted: credentials accepted) and is ready when the new
    session's Dock checks in with launchservicesd (the Dock, and with it the desktop, is up).
    The pair must fall within 10 minutes; a start with no Dock check-in after it (a screen
    unlock, a re-authentication in a running session) gives no event. Precision: both are
    log timestamps (microseconds), but "Dock checked in" is when the Dock process
    registered, not when the last login item finished; the figure is the wait a user sees
    until the Dock appears. The user name is redacted (``<private>``) in these records, so no
    ``_user`` is given. Returns the events and, when the last start has no end yet, its time
    (the reader reads again from there).
    """
    events: list[dict[str, Any]] = []
    pending: tuple[datetime, str] | None = None
    for record in records:
        ts = parse_log_time(str(record.get("timestamp", "")))
        if ts is None:
            continue
        if _is_credentials_accepted(record):
            pending = (ts, str(record.get("bootUUID", "")))
            continue
        if pending is None or not _is_dock_checkin(record):
            continue
        started, boot = pending
        seconds = (ts - started).total_seconds()
        if not 0 <= seconds <= _MAX_SIGN_IN_S:
            pending = None
            continue
        events.append(
            {
                "event_id": stable_event_id("unifiedlog-logon", f"{boot}:{started.isoformat()}"),
                "ts": ts,
                "type": "logon",
                "logon_duration_s": round(seconds, 3),
                "first_logon": False,
                "source": "unifiedlog-loginwindow",
            }
        )
        pending = None
    return events, pending[0] if pending else None


def shutdown_cause_events(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``system_crash`` events from the kernel's ``Previous shutdown cause: N`` records.

    The SMC of Intel Macs records why the previous boot ended; the kernel logs it at the
    next boot (Apple silicon Macs log no such code). Negative codes are hardware-initiated
    shutdowns (thermal, watchdog, power) and ``0`` is a sudden loss of power: both become
    ``unexpected_shutdown``. ``3`` (the power button held down) becomes
    ``unclean_shutdown``. Other positive codes (``5``: a normal shut down or restart) give no
    event. ``ts`` is the record's time (early in the next boot), and the id is keyed by the
    record's boot, so one boot reports once.
    """
    events: list[dict[str, Any]] = []
    for record in records:
        match = _SHUTDOWN.search(str(record.get("eventMessage", "")))
        ts = parse_log_time(str(record.get("timestamp", "")))
        if match is None or ts is None:
            continue
        code = int(match.group(1))
        if code > 0 and code != 3:
            continue
        meaning = SHUTDOWN_CAUSES.get(code, "hardware-initiated" if code < 0 else "unknown")
        boot = str(record.get("bootUUID", "")) or ts.isoformat()
        events.append(
            {
                "event_id": stable_event_id("unifiedlog-shutdown-cause", boot),
                "ts": ts,
                "type": "system_crash",
                "crash_kind": "unclean_shutdown" if code == 3 else "unexpected_shutdown",
                "detail": f"previous shutdown cause {code}: {meaning}",
                "source": "unifiedlog-smc",
            }
        )
    return events


def parse_install_history(data: bytes) -> list[dict[str, Any]]:
    """The entries of ``InstallHistory.plist`` (XML or binary plist), oldest first; entries
    without a date or a display name are skipped. Raises ``ValueError`` if the data is not a
    plist array."""
    try:
        items = plistlib.loads(data)
    except (plistlib.InvalidFileException, ExpatError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a plist: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError("InstallHistory.plist is not an array")
    entries = [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("date"), datetime)
        and isinstance(item.get("displayName"), str)
        and item["displayName"].strip()
    ]
    for entry in entries:
        when: datetime = entry["date"]
        entry["date"] = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    entries.sort(key=lambda e: e["date"])
    return entries


_OS_UPDATERS = frozenset({"softwareupdated", "softwareupdate", "Software Update"})
_OS_INSTALLERS = frozenset({"macOS Installer", "OS X Installer", "Install macOS"})


def _entry_key(entry: Mapping[str, Any]) -> str:
    return "|".join(
        (
            entry["date"].isoformat(),
            str(entry.get("displayName", "")),
            str(entry.get("displayVersion", "")),
            str(entry.get("processName", "")),
        )
    )


def install_history_changes(
    entries: Iterable[Mapping[str, Any]], after: datetime, done_at_after: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """``software_change`` events for the install-history entries newer than ``after``.

    ``entries`` is the whole history (oldest first) so an app seen before with another
    version is an ``update`` with ``version_from``. Entries written by Software Update
    (``processName`` ``softwareupdated``) or by the macOS installer are ``os_patch``; others
    (``Installer``, ``installer``, ``appstoreagent``, MDM) are ``install`` or ``update``.
    Background security data (``contentType`` ``config-data``: XProtect, MRT, Gatekeeper
    lists) is not a software change and is skipped. Entries at exactly ``after`` whose key
    is in ``done_at_after`` were reported before. Returns the events and the keys of the
    entries at the newest date (for the next call).
    """
    done = set(done_at_after)
    last_version: dict[str, str] = {}
    events: list[dict[str, Any]] = []
    newest, at_newest = after, list(done)
    for entry in entries:
        name = str(entry["displayName"]).strip()[:256]
        version = str(entry.get("displayVersion", "") or "").strip()[:128]
        previous = last_version.get(name)
        if version:
            last_version[name] = version
        when: datetime = entry["date"]
        key = _entry_key(entry)
        if when < after or (when == after and key in done):
            continue
        if when > newest:
            newest, at_newest = when, []
        at_newest.append(key)
        if entry.get("contentType") == "config-data":
            continue
        process = str(entry.get("processName", ""))
        if process in _OS_UPDATERS or process in _OS_INSTALLERS:
            change = "os_patch"
        elif previous is not None and version and previous != version:
            change = "update"
        else:
            change = "install"
        event: dict[str, Any] = {
            "event_id": stable_event_id("InstallHistory", key),
            "ts": when,
            "type": "software_change",
            "change": change,
            "name": name,
            "source": "InstallHistory",
        }
        if version:
            event["version_to"] = version
        if change == "update" and previous:
            event["version_from"] = previous
        events.append(event)
    return events, at_newest
