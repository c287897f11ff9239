"""Pure parsers of Windows event-log records (the XML ``wevtutil qe /f:xml`` prints).

Nothing here touches the OS: :mod:`agent.platform.windows` runs ``wevtutil`` and hands its
output to these functions, so they run (and are tested) on any OS, on recorded XML and on
records of real ``.evtx`` files converted with ``python-evtx``.

Which record becomes which wire event (field names as Microsoft's manifests spell them):

- ``app_crash``: Application log, provider ``Application Error``, event 1000 (``AppName``,
  ``AppVersion``, ``ModuleName``, ``ExceptionCode``; positional ``<Data>`` on older builds).
  Windows Error Reporting 1001 with event name ``APPCRASH`` describes the same crash a few
  seconds later, so it is used only when no 1000 of the same application lies within
  :data:`CRASH_PAIR_WINDOW_S` (see :func:`pair_app_crashes`).
- ``app_hang``: Application log, provider ``Application Hang``, event 1002 (positional
  ``<Data>``: program, version, process id, start time, termination time, path, report id,
  ...). The event gives no documented hang duration, so ``hang_duration_s`` is left out
  (the hang lasted at least :data:`HUNG_WINDOW_THRESHOLD_S`, the time after which Windows
  calls a window "not responding"; no figure is invented).
- ``system_crash``: System log, ``Microsoft-Windows-WER-SystemErrorReporting`` 1001
  (``bugcheck``, code from ``param1``), ``Microsoft-Windows-Kernel-Power`` 41 (``bugcheck``
  when its decimal ``BugcheckCode`` is not 0, else ``unexpected_shutdown``), ``EventLog`` 6008
  (``unexpected_shutdown``). One crash logs several of them at the next start-up: records
  within :data:`SYSTEM_CRASH_WINDOW_S` of each other count once (:func:`merge_system_crashes`).
- ``software_change``: System log ``Microsoft-Windows-WindowsUpdateClient`` 19 (update
  installed: ``os_patch`` with its KB number, Microsoft Store app updates as ``update``),
  ``Microsoft-Windows-UserPnp`` 20001 (driver installed: ``driver``), Application log
  ``MsiInstaller`` 1033 / 1034 (product installed / removed; a removal and an installation
  of the same product close together are one ``update``, see :func:`pair_msi_updates`).
- ``logon`` and ``boot``: ``Microsoft-Windows-Diagnostics-Performance/Operational`` event 100
  (times in milliseconds), with the boot kind from ``Microsoft-Windows-Kernel-Boot`` 27
  (``BootType``).

Privacy: only executable file names (:func:`~agent.platform.common.app_name_from_path`),
versions, codes and product titles leave these functions; never paths, user names, SIDs,
computer names or command lines.

XML safety: :mod:`xml.etree.ElementTree` (expat) never fetches external entities or DTDs,
and the input is the local ``wevtutil``'s own output.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.platform.common import app_name_from_path, stable_event_id

__all__ = [
    "CRASH_PAIR_WINDOW_S",
    "HUNG_WINDOW_THRESHOLD_S",
    "MSI_UPDATE_WINDOW_S",
    "SYSTEM_CRASH_WINDOW_S",
    "UNINSTALL_STATE_KEY",
    "WinEvent",
    "app_crash_from",
    "app_hang_from",
    "boot_kind_from",
    "boot_phases_from",
    "build_query",
    "dump_cursor",
    "event_id_of",
    "load_cursor",
    "logon_from",
    "merge_system_crashes",
    "pair_app_crashes",
    "pair_msi_updates",
    "parse_event",
    "parse_events",
    "parse_time",
    "software_change_from",
    "system_crash_from",
    "uninstall_changes",
]

log = logging.getLogger(__name__)

HUNG_WINDOW_THRESHOLD_S = 5.0
"""Seconds without processing messages after which Windows calls a window "not responding"
(``IsHungAppWindow``); the hang duration reported for event 1002, which states none."""

CRASH_PAIR_WINDOW_S = 120.0
"""A WER 1001 APPCRASH this close to an Application Error 1000 of the same app is the same crash."""

SYSTEM_CRASH_WINDOW_S = 600.0
"""BugCheck 1001, Kernel-Power 41 and EventLog 6008 this close together are one crash."""

MSI_UPDATE_WINDOW_S = 600.0
"""An MSI removal and installation of one product this close together are one update."""

_MAX_NAME = 256
_MAX_VERSION = 128
_MAX_TEXT = 2000
_TIME = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_EVENT_START = re.compile(r"<Event[\s>]")
_KB = re.compile(r"\bKB\s?(\d{5,8})\b", re.IGNORECASE)
_DEFINITION = re.compile(r"\(Definition\s+([0-9][0-9.]*)\)")
_STORE_APP = re.compile(r"^[0-9A-Z]{12}-(.+)$")
_HEX_CODE = re.compile(r"^(?:0x)?([0-9a-fA-F]{1,16})$")
_INVISIBLE = re.compile("[\u200e\u200f\u202a-\u202e]")


@dataclass(frozen=True)
class WinEvent:
    """One event-log record, namespace-free: the System fields the readers need and the data.

    ``data`` holds the named ``<EventData><Data Name=...>`` values, ``data_list`` every
    ``<Data>`` value in order (classic providers leave them unnamed), ``user_data`` the
    leaf elements of ``<UserData>`` (manifest providers such as UserPnp).
    """

    provider: str
    event_id: int
    record_id: int
    ts: datetime
    channel: str
    data: dict[str, str] = field(default_factory=dict)
    data_list: list[str] = field(default_factory=list)
    user_data: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, index: int | None = None) -> str | None:
        """A data value by name, else by position among the unnamed ``<Data>`` (0-based)."""
        if name in self.data:
            return self.data[name]
        if name in self.user_data:
            return self.user_data[name]
        if index is not None and not self.data and 0 <= index < len(self.data_list):
            return self.data_list[index]
        return None


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from an event-log time: ``2024-05-01T08:00:00.1234567Z`` (what
    wevtutil prints, 100 ns digits) or ``2018-07-06 18:45:37.179123+00:00`` (python-evtx)."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"not an event-log time: {text!r}")
    date, clock, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    value = datetime.fromisoformat(f"{date}T{clock}.{micros}")
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return (value - sign * offset).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def parse_event(element: ET.Element | str) -> WinEvent:
    """One ``<Event>`` (element or XML text) as a :class:`WinEvent`; ValueError if it lacks
    the provider, event id, record id or time."""
    if isinstance(element, str):
        try:
            element = ET.fromstring(element)
        except ET.ParseError as exc:
            raise ValueError(f"malformed event XML: {exc}") from exc
    if _local(element.tag) != "Event":
        raise ValueError(f"not an <Event>: <{_local(element.tag)}>")
    system = _child(element, "System")
    if system is None:
        raise ValueError("event without <System>")
    provider = _child(system, "Provider")
    event_id = _child(system, "EventID")
    record_id = _child(system, "EventRecordID")
    created = _child(system, "TimeCreated")
    channel = _child(system, "Channel")
    if provider is None or event_id is None or record_id is None or created is None:
        raise ValueError("event lacks Provider, EventID, EventRecordID or TimeCreated")
    try:
        number = int((event_id.text or "").strip())
        record = int((record_id.text or "").strip())
    except ValueError as exc:
        raise ValueError(f"bad EventID or EventRecordID: {exc}") from exc
    ts = parse_time(created.get("SystemTime", ""))
    data: dict[str, str] = {}
    data_list: list[str] = []
    user_data: dict[str, str] = {}
    event_data = _child(element, "EventData")
    if event_data is not None:
        for item in event_data:
            if _local(item.tag) != "Data":
                continue
            value = (item.text or "").strip()
            data_list.append(value)
            if item.get("Name"):
                data[str(item.get("Name"))] = value
    extra = _child(element, "UserData")
    if extra is not None:
        for holder in extra:
            for item in holder.iter():
                if item is not holder and len(item) == 0:
                    user_data[_local(item.tag)] = (item.text or "").strip()
    return WinEvent(
        provider=provider.get("Name", "") or provider.get("EventSourceName", ""),
        event_id=number & 0xFFFF,
        record_id=record,
        ts=ts,
        channel=(channel.text or "").strip() if channel is not None else "",
        data=data,
        data_list=data_list,
        user_data=user_data,
    )


def parse_events(text: str) -> tuple[list[WinEvent], int]:
    """Every record of ``wevtutil qe ... /f:xml [/e:Events]`` output, and how many were skipped.

    The whole text is parsed at once when it is well-formed; otherwise record by record, so a
    malformed or truncated record is skipped (counted, logged) and never aborts the read.
    """
    body = text.strip().lstrip("\ufeff")
    if not body:
        return [], 0
    try:
        root = ET.fromstring(body if body.startswith("<Events") else f"<Events>{body}</Events>")
    except ET.ParseError:
        root = None
    events: list[WinEvent] = []
    skipped = 0
    if root is not None:
        chunks: Iterable[ET.Element | str] = [e for e in root if _local(e.tag) == "Event"]
    else:
        # Record by record: from each "<Event" to the next, cut after its last "</Event>", so
        # one broken record never swallows its neighbour.
        starts = [m.start() for m in _EVENT_START.finditer(body)] + [len(body)]
        pieces = [body[a:b] for a, b in itertools.pairwise(starts)]
        chunks = [
            p[: p.rfind("</Event>") + len("</Event>")] if "</Event>" in p else p for p in pieces
        ]
    for chunk in chunks:
        try:
            events.append(parse_event(chunk))
        except ValueError as exc:
            skipped += 1
            log.warning("skipping an unreadable event-log record: %s", exc)
    return events, skipped


def event_id_of(log_name: str, event: WinEvent) -> Any:
    """The stable wire ``event_id`` of a record: re-reading it never doubles it."""
    return stable_event_id(f"wevtutil:{log_name}", str(event.record_id))


def _base(log_name: str, event: WinEvent, kind: str) -> dict[str, Any]:
    return {"event_id": event_id_of(log_name, event), "ts": event.ts, "type": kind}


def _clip(text: str | None, limit: int) -> str | None:
    text = _INVISIBLE.sub("", text or "").strip()
    return text[:limit] if text else None


def _exception_code(raw: str | None) -> str | None:
    """``c0000005`` / ``0xc0000005`` as ``0xc0000005``; other text as is (bounded)."""
    text = _clip(raw, 64)
    if text is None:
        return None
    match = _HEX_CODE.match(text)
    return f"0x{match.group(1).lower().rjust(8, '0')}" if match else text


def _ms(event: WinEvent, name: str) -> float | None:
    raw = event.get(name)
    try:
        return int(raw) / 1000.0 if raw not in (None, "") else None
    except ValueError:
        return None


def app_crash_from(event: WinEvent, log_name: str = "Application") -> dict[str, Any] | None:
    """An ``app_crash`` from Application Error 1000 or WER 1001 ``APPCRASH`` (else None)."""
    if event.provider == "Application Error" and event.event_id == 1000:
        app, version = event.get("AppName", 0), event.get("AppVersion", 1)
        module, code = event.get("ModuleName", 3), event.get("ExceptionCode", 6)
    elif event.provider == "Windows Error Reporting" and event.event_id == 1001:
        if (event.get("EventName", 2) or "").upper() != "APPCRASH":
            return None
        app, version = event.get("P1", 5), event.get("P2", 6)
        module, code = event.get("P4", 8), event.get("P7", 11)
    else:
        return None
    name = _clip(app_name_from_path(app or ""), _MAX_NAME)
    if name is None:
        return None
    crash = _base(log_name, event, "app_crash")
    crash.update(app_name=name, source=f"wevtutil:{log_name}:{event.provider}:{event.event_id}")
    if v := _clip(version, _MAX_VERSION):
        crash["app_version"] = v
    if m := _clip(app_name_from_path(module or ""), _MAX_NAME):
        crash["faulting_module"] = m
    if c := _exception_code(code):
        crash["exception_code"] = c
    return crash


def pair_app_crashes(
    pairs: list[tuple[WinEvent, dict[str, Any]]], recent: Iterable[tuple[str, float]] = ()
) -> list[dict[str, Any]]:
    """The crashes to report: every Application Error 1000, and a WER 1001 only when no 1000
    of the same app (case-insensitive) lies within :data:`CRASH_PAIR_WINDOW_S` — in this
    read or in ``recent`` (``(app, epoch seconds)`` of 1000s reported by the previous read)."""
    seen = [(a.casefold(), t) for a, t in recent]
    seen += [(c["app_name"].casefold(), e.ts.timestamp()) for e, c in pairs if e.event_id == 1000]
    out = []
    for event, crash in pairs:
        if event.event_id == 1001:
            app, ts = crash["app_name"].casefold(), event.ts.timestamp()
            if any(a == app and abs(t - ts) <= CRASH_PAIR_WINDOW_S for a, t in seen):
                continue
        out.append(crash)
    return out


def app_hang_from(event: WinEvent, log_name: str = "Application") -> dict[str, Any] | None:
    """An ``app_hang`` from Application Hang 1002 (else None), without ``hang_duration_s``
    (see the module docstring)."""
    if event.provider != "Application Hang" or event.event_id != 1002:
        return None
    name = _clip(app_name_from_path(event.get("AppName", 0) or ""), _MAX_NAME)
    if name is None:
        return None
    hang = _base(log_name, event, "app_hang")
    hang.update(
        app_name=name,
        source=f"wevtutil:{log_name}:Application Hang:1002",
    )
    if v := _clip(event.get("AppVersion", 1), _MAX_VERSION):
        hang["app_version"] = v
    return hang


def system_crash_from(event: WinEvent, log_name: str = "System") -> dict[str, Any] | None:
    """A ``system_crash`` from BugCheck 1001, Kernel-Power 41 or EventLog 6008 (else None)."""
    crash = _base(log_name, event, "system_crash")
    source = f"wevtutil:{log_name}:{event.provider}:{event.event_id}"
    if event.provider == "Microsoft-Windows-WER-SystemErrorReporting" and event.event_id == 1001:
        param = _clip(event.get("param1", 0), _MAX_TEXT) or ""
        crash.update(crash_kind="bugcheck", source=source)
        if param:
            crash["bugcheck_code"] = param.split()[0].rstrip(",")[:64]
            crash["detail"] = f"bugcheck {param}"[:_MAX_TEXT]
        return crash
    if event.provider == "Microsoft-Windows-Kernel-Power" and event.event_id == 41:
        try:
            code = int(event.get("BugcheckCode") or "0", 0)
        except ValueError:
            code = 0
        notes = []
        if (event.get("SleepInProgress") or "0").lower() not in ("0", "false", ""):
            notes.append("during a sleep transition")
        if (event.get("PowerButtonTimestamp") or "0") not in ("0", ""):
            notes.append("after the power button was held")
        crash.update(crash_kind="bugcheck" if code else "unexpected_shutdown", source=source)
        if code:
            crash["bugcheck_code"] = f"0x{code:08x}"
        crash["detail"] = "rebooted without cleanly shutting down" + (
            f" ({', '.join(notes)})" if notes else ""
        )
        return crash
    if event.provider == "EventLog" and event.event_id == 6008:
        # Unnamed data: the local time and date of the unexpected shutdown, as text.
        parts = [_clip(value, 64) for value in event.data_list[:2]]
        when = " ".join(p for p in parts if p)
        crash.update(crash_kind="unexpected_shutdown", source=source)
        crash["detail"] = (
            f"previous shutdown at {when} was unexpected"
            if when
            else "previous shutdown was unexpected"
        )
        return crash
    return None


def _crash_rank(crash: dict[str, Any]) -> int:
    source = str(crash.get("source", ""))
    if "WER-SystemErrorReporting" in source:
        return 0
    return 1 if "Kernel-Power" in source else 2


def merge_system_crashes(
    crashes: list[dict[str, Any]], last_reported: datetime | None = None
) -> list[dict[str, Any]]:
    """One event per crash: records within :data:`SYSTEM_CRASH_WINDOW_S` of the first of a
    group (or of ``last_reported``, the previous read's last crash) are one crash; the group is
    reported by its most telling record (BugCheck 1001, then Kernel-Power 41, then 6008),
    taking a bugcheck code any member knows."""
    window = timedelta(seconds=SYSTEM_CRASH_WINDOW_S)
    groups: list[list[dict[str, Any]]] = []
    for crash in sorted(crashes, key=lambda c: c["ts"]):
        if last_reported is not None and abs(crash["ts"] - last_reported) <= window:
            continue
        if groups and crash["ts"] - groups[-1][0]["ts"] <= window:
            groups[-1].append(crash)
        else:
            groups.append([crash])
    out = []
    for group in groups:
        first: dict[str, Any] = min(group, key=_crash_rank)
        best = dict(first)
        codes = [c["bugcheck_code"] for c in group if c.get("bugcheck_code")]
        if codes and "bugcheck_code" not in best:
            best["bugcheck_code"] = codes[0]
            best["crash_kind"] = "bugcheck"
        out.append(best)
    return out


def software_change_from(event: WinEvent, log_name: str) -> dict[str, Any] | None:
    """A ``software_change`` from WindowsUpdateClient 19, UserPnp 20001 or MsiInstaller
    1033 / 1034 (else None; failed installations are not changes)."""
    change = _base(log_name, event, "software_change")
    source = f"wevtutil:{log_name}:{event.provider}:{event.event_id}"
    if event.provider == "Microsoft-Windows-WindowsUpdateClient" and event.event_id == 19:
        title = _clip(event.get("updateTitle", 0), _MAX_NAME)
        if title is None:
            return None
        store = _STORE_APP.match(title)
        if store:  # a Microsoft Store app delivered by Windows Update: "9WZDNCRFJ3PR-MICROSOFT.X"
            change.update(change="update", name=store.group(1)[:_MAX_NAME], source=source)
            return change
        change.update(change="os_patch", name=title, source=source)
        if kb := _KB.search(title):
            change["kb"] = f"KB{kb.group(1)}"
        if definition := _DEFINITION.search(title):
            change["version_to"] = definition.group(1)[:_MAX_VERSION]
        return change
    if event.provider == "Microsoft-Windows-UserPnp" and event.event_id == 20001:
        status = (event.get("InstallStatus") or "0").strip()
        try:
            if int(status, 16 if status.lower().startswith("0x") else 10) != 0:
                return None
        except ValueError:
            return None
        name = _clip(event.get("DriverDescription"), _MAX_NAME)
        inf = _clip(event.get("DriverName"), _MAX_NAME)
        name = name or (app_name_from_path(inf) if inf else None)
        if not name:
            return None
        change.update(change="driver", name=name, source=source)
        if v := _clip(event.get("DriverVersion"), _MAX_VERSION):
            change["version_to"] = v
        if p := _clip(event.get("DriverProvider"), _MAX_NAME):
            change["publisher"] = p
        return change
    if event.provider == "MsiInstaller" and event.event_id in (1033, 1034):
        # Message: "Product Name: %1. Product Version: %2. Product Language: %3.
        # Manufacturer: %5. Installation (Removal) success or error status: %4."
        name = _clip(event.get("ProductName", 0), _MAX_NAME)
        status = (event.get("Status", 3) or "0").strip()
        if name is None or status not in ("0", ""):
            return None
        installed = event.event_id == 1033
        change.update(change="install" if installed else "removal", name=name, source=source)
        if v := _clip(event.get("ProductVersion", 1), _MAX_VERSION):
            change["version_to" if installed else "version_from"] = v
        if p := _clip(event.get("Manufacturer", 4), _MAX_NAME):
            change["publisher"] = p
        return change
    return None


def pair_msi_updates(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge an MSI ``removal`` and an ``install`` of the same product name within
    :data:`MSI_UPDATE_WINDOW_S` (an upgrade) into one ``update`` (old → new version), keeping
    the installation's event id."""
    window = timedelta(seconds=MSI_UPDATE_WINDOW_S)
    removals = [c for c in changes if c["change"] == "removal" and "MsiInstaller" in c["source"]]
    used: set[int] = set()
    out = []
    for change in changes:
        if change["change"] == "install" and "MsiInstaller" in change["source"]:
            for removal in removals:
                if (
                    id(removal) not in used
                    and removal["name"].casefold() == change["name"].casefold()
                    and abs(removal["ts"] - change["ts"]) <= window
                ):
                    used.add(id(removal))
                    change = {**change, "change": "update"}
                    if "version_from" in removal:
                        change["version_from"] = removal["version_from"]
                    break
        out.append(change)
    return [c for c in out if id(c) not in used]


def boot_kind_from(event: WinEvent | None) -> str:
    """``cold`` / ``fast_startup`` / ``resume`` / ``unknown`` from Kernel-Boot 27's
    ``BootType`` (0 cold boot, 1 fast startup (hybrid boot), 2 resume from hibernation)."""
    if event is None:
        return "unknown"
    raw = (event.get("BootType") or "").strip()
    try:
        value = int(raw, 0)
    except ValueError:
        return "unknown"
    return {0: "cold", 1: "fast_startup", 2: "resume"}.get(value, "unknown")


def boot_phases_from(event: WinEvent, boot_kind: str = "unknown") -> dict[str, Any] | None:
    """Boot figures in seconds from Diagnostics-Performance 100: ``boot_duration_s``
    (``BootTime``), ``main_path_s`` (``MainPathBootTime``), ``post_boot_s``
    (``BootPostBootTime``), plus ``boot_kind`` and ``source``."""
    if event.event_id != 100 or "Diagnostics-Performance" not in event.provider:
        return None
    phases: dict[str, Any] = {}
    for wire, name in (
        ("boot_duration_s", "BootTime"),
        ("main_path_s", "MainPathBootTime"),
        ("post_boot_s", "BootPostBootTime"),
    ):
        value = _ms(event, name)
        if value is not None and 0 <= value <= 7 * 86400:
            phases[wire] = value
    if not phases:
        return None
    phases["boot_kind"] = boot_kind
    phases["source"] = "diagnostics-performance-100"
    return phases


def logon_from(event: WinEvent, log_name: str) -> dict[str, Any] | None:
    """A ``logon`` from Diagnostics-Performance 100, the sign-in that follows a boot:
    ``logon_duration_s`` = ``BootUserProfileProcessingTime`` + ``BootExplorerInitTime``
    (credentials accepted → desktop shown; the time spent typing them is
    ``UserLogonWaitDuration``, left out), ``desktop_ready_s`` adds ``BootPostBootTime``
    (desktop → system idle). The event names no account, so there is no ``_user``, and it does
    not say whether the profile was new: ``first_logon`` is false (the logon sampler may still
    judge it). None when both phases are missing."""
    if event.event_id != 100 or "Diagnostics-Performance" not in event.provider:
        return None
    profile, explorer = (
        _ms(event, "BootUserProfileProcessingTime"),
        _ms(event, "BootExplorerInitTime"),
    )
    if profile is None and explorer is None:
        return None
    duration = (profile or 0.0) + (explorer or 0.0)
    if not 0 <= duration <= 7 * 86400:
        return None
    logon = _base(log_name, event, "logon")
    logon.update(logon_duration_s=duration, first_logon=False, source="diagnostics-performance-100")
    post = _ms(event, "BootPostBootTime")
    if post is not None and duration + post <= 7 * 86400:
        logon["desktop_ready_s"] = duration + post
    return logon


def load_cursor(cursor: str | None) -> dict[str, Any]:
    """The cursor's mapping (log name → last ``EventRecordID``, plus ``_``-prefixed extras);
    an empty mapping for None or an unreadable cursor (the read then starts at ``since``)."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        log.warning("ignoring an unreadable event-log cursor")
        return {}
    return value if isinstance(value, dict) else {}


def dump_cursor(state: Mapping[str, Any]) -> str:
    """The cursor text of ``state`` (stable key order)."""
    return json.dumps(dict(state), sort_keys=True, separators=(",", ":"))


def build_query(selector: str, last_record_id: int | None, since: datetime) -> str:
    """The XPath for ``wevtutil qe /q:``: ``selector`` (a ``System[...]`` condition on
    providers and event ids) and either ``EventRecordID > N`` (from the cursor) or, on the
    first read, ``TimeCreated[@SystemTime>='since']``."""
    if last_record_id is not None:
        after = f"EventRecordID > {int(last_record_id)}"
    else:
        stamp = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        text = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        after = f"TimeCreated[@SystemTime>='{text}']"
    return f"*[System[({selector}) and {after}]]"


UNINSTALL_STATE_KEY = "_uninstall"
"""Where the software-change cursor keeps the last snapshot of the Uninstall keys."""


def uninstall_changes(
    previous: Mapping[str, Mapping[str, str]] | None,
    current: Mapping[str, Mapping[str, str]],
    now: datetime,
) -> list[dict[str, Any]]:
    """``software_change`` events from two snapshots of the registry's Uninstall keys.

    A snapshot maps the key name to ``{"name", "version", "publisher", "msi"}`` (what
    :func:`agent.platform.windows.read_uninstall_keys` reads). A key that appears is an
    install, one that disappears a removal, a changed ``DisplayVersion`` an update with both
    versions: this is how EXE installers and per-machine apps that log nothing are seen.
    Entries installed by Windows Installer (``msi`` = "1") are left to the MsiInstaller
    1033/1034 events, so one change is not counted twice. The first snapshot (``previous``
    None) is the baseline: nothing is reported. ``ts`` is when the change was seen (the
    registry keeps only an install date); the event id derives from the key and versions.
    """
    if previous is None:
        return []
    events: list[dict[str, Any]] = []

    def add(
        key: str, change: str, entry: Mapping[str, str], old: str | None, new: str | None
    ) -> None:
        if entry.get("msi") == "1" or not entry.get("name"):
            return
        event: dict[str, Any] = {
            "event_id": stable_event_id("uninstall-keys", f"{key}\x00{old}\x00{new}"),
            "ts": now,
            "type": "software_change",
            "change": change,
            "name": entry["name"][:_MAX_NAME],
            "source": "registry:Uninstall",
        }
        if old:
            event["version_from"] = old[:_MAX_VERSION]
        if new:
            event["version_to"] = new[:_MAX_VERSION]
        if entry.get("publisher"):
            event["publisher"] = entry["publisher"][:_MAX_NAME]
        events.append(event)

    for key in sorted(set(current) - set(previous)):
        add(key, "install", current[key], None, current[key].get("version") or None)
    for key in sorted(set(previous) - set(current)):
        add(key, "removal", previous[key], previous[key].get("version") or None, None)
    for key in sorted(set(current) & set(previous)):
        old, new = previous[key].get("version") or None, current[key].get("version") or None
        if old != new:
            add(key, "update", current[key], old, new)
    return events
