"""Pure parsers of Linux log sources, turned into wire events.

Each function takes the text or records a source produced and returns wire events (or the
pieces to build them); none touches the system, so all run on recorded fixtures in tests.
The readers that feed them live in :mod:`agent.platform.linux`.

Sources: the kernel log (``/dev/kmsg`` records, or the journal's kernel transport), journald
JSON records (systemd-coredump, systemd-logind, the user manager), ``/var/log/dpkg.log``,
``/var/log/dnf.rpm.log``, apport's ``/var/crash/*.crash`` headers, ``/var/log/wtmp`` and
pstore panic dumps.
"""

from __future__ import annotations

import re
import signal
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from agent.platform.common import app_name_from_path, stable_event_id

__all__ = [
    "COREDUMP_MESSAGE_ID",
    "KmsgRecord",
    "WtmpRecord",
    "apport_crash",
    "classify_package",
    "coredump_crash",
    "dpkg_changes",
    "journal_logons",
    "kmsg_crash",
    "local_offset_tz",
    "parse_apport_header",
    "parse_kmsg_record",
    "parse_wtmp",
    "pstore_panic",
    "rpm_changes",
    "signal_name",
    "unclean_shutdowns",
]

COREDUMP_MESSAGE_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
"""journald MESSAGE_ID of systemd-coredump's "Process … dumped core" records."""
SESSION_START_MESSAGE_ID = "8d45620c1a4348dbb17410da57c60c66"
"""systemd-logind's "New session N of user U." records."""
TARGET_REACHED_MESSAGE_ID = "39f53479d3a045ac8e11786248231fbf"
"""systemd's "unit started / target reached" records (the user manager's too)."""

_DESKTOP_TARGETS = ("graphical-session.target",)


def signal_name(number: int | str) -> str:
    """``SIGSEGV`` for 11, or ``signal N`` for a number Python does not know."""
    try:
        return signal.Signals(int(number)).name
    except (ValueError, TypeError):
        return f"signal {number}"


@dataclass(frozen=True)
class KmsgRecord:
    """One kernel log record: sequence number, microseconds since boot, message."""

    seq: int
    usec: int
    message: str


def parse_kmsg_record(raw: str) -> KmsgRecord | None:
    """A ``/dev/kmsg`` record (``prio,seq,usec,flags;message``); None if malformed."""
    head, sep, message = raw.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3:
        return None
    try:
        return KmsgRecord(int(fields[1]), int(fields[2]), message.split("\n", 1)[0])
    except ValueError:
        return None


# "python3[12688]: segfault at 0 ip 00007f… sp 00007ffc… error 4 in libc.so.6[156219,7f…+156000]"
_SEGFAULT = re.compile(
    r"^(?P<comm>.{1,16}?)\[(?P<pid>\d+)\]: segfault at \S+(?:.*? in (?P<mod>[^\[\s]+)\[)?"
)
# "traps: prog[123] general protection fault ip:… sp:… error:0 in libfoo.so[…]"
_TRAP = re.compile(
    r"^traps: (?P<comm>.{1,16}?)\[(?P<pid>\d+)\] (?P<kind>general protection fault|trap invalid "
    r"opcode|trap divide error|trap int3|trap stack segment)(?:.*? in (?P<mod>[^\[\s]+)\[)?"
)
_TRAP_SIGNAL = {
    "general protection fault": "SIGSEGV",
    "trap invalid opcode": "SIGILL",
    "trap divide error": "SIGFPE",
    "trap int3": "SIGTRAP",
    "trap stack segment": "SIGBUS",
}


def kmsg_crash(message: str, ts: datetime, key: str) -> dict[str, Any] | None:
    """An ``app_crash`` event from a kernel "segfault at" / "traps:" line, else None.

    The kernel names the process by its ``comm`` (at most 15 characters) and the mapping
    the fault happened in (the faulting module). ``key`` identifies the record (boot id and
    sequence number) for a stable event id. The ``_pid`` key is private (for de-duplication
    against apport) and is removed before spooling.
    """
    match = _SEGFAULT.match(message)
    code = "SIGSEGV"
    if match is None:
        match = _TRAP.match(message)
        if match is None:
            return None
        code = _TRAP_SIGNAL[match.group("kind")]
    event: dict[str, Any] = {
        "event_id": stable_event_id("kmsg", key),
        "ts": ts,
        "type": "app_crash",
        "app_name": match.group("comm").strip() or "unknown",
        "exception_code": code,
        "source": "kernel-log",
        "_pid": int(match.group("pid")),
    }
    if match.group("mod"):
        event["faulting_module"] = match.group("mod")[:256]
    return event


def coredump_crash(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """An ``app_crash`` event from a systemd-coredump journal record (MESSAGE_ID
    ``fc2e22bc…``), else None. Uses COREDUMP_EXE (file name only), COREDUMP_COMM,
    COREDUMP_SIGNAL, COREDUMP_TIMESTAMP and, where systemd read the ELF package note,
    COREDUMP_PACKAGE_VERSION."""
    if record.get("MESSAGE_ID") != COREDUMP_MESSAGE_ID:
        return None
    exe = _field(record, "COREDUMP_EXE")
    comm = _field(record, "COREDUMP_COMM")
    name = app_name_from_path(exe) if exe else (comm or "unknown")
    usec = _field(record, "COREDUMP_TIMESTAMP") or _field(record, "__REALTIME_TIMESTAMP")
    event: dict[str, Any] = {
        "event_id": stable_event_id("journal", _field(record, "__CURSOR") or repr(record)),
        "ts": _from_usec(usec),
        "type": "app_crash",
        "app_name": name,
        "source": "systemd-coredump",
    }
    sig = _field(record, "COREDUMP_SIGNAL_NAME") or (
        signal_name(_field(record, "COREDUMP_SIGNAL")) if _field(record, "COREDUMP_SIGNAL") else ""
    )
    if sig:
        event["exception_code"] = sig[:64]
    version = _field(record, "COREDUMP_PACKAGE_VERSION")
    if version:
        event["app_version"] = version[:128]
    pid = _field(record, "COREDUMP_PID")
    if pid.isdigit():
        event["_pid"] = int(pid)
    return event


def journal_logons(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``logon`` events from logind session starts and the user manager's desktop target.

    A sign-in starts at systemd-logind's "New session N of user U" (credentials accepted,
    session created) and is ready when a user manager reports ``graphical-session.target``
    reached (the desktop session is up). The target is paired with the pending session of the
    same uid (when the user name resolves on this machine), else with the latest session that
    started at most 10 minutes before. A session with no such target (a console or SSH login)
    is not a desktop sign-in and gives no event. The user's name travels only under the
    private key ``_user`` (hashed by the sampler).
    """
    pending: list[tuple[datetime, str, str, str]] = []  # started, user, session, uid
    events: list[dict[str, Any]] = []
    for record in records:
        message_id = record.get("MESSAGE_ID")
        ts = _from_usec(_field(record, "__REALTIME_TIMESTAMP"))
        if message_id == SESSION_START_MESSAGE_ID:
            user = _field(record, "USER_ID")
            pending.append((ts, user, _field(record, "SESSION_ID"), _uid_of(user)))
            continue
        if message_id != TARGET_REACHED_MESSAGE_ID:
            continue
        if _field(record, "USER_UNIT") not in _DESKTOP_TARGETS:
            continue
        pending = [p for p in pending if timedelta(0) <= ts - p[0] <= _MAX_SIGN_IN]
        owner = _field(record, "_UID")
        match = next((p for p in reversed(pending) if owner and p[3] == owner), None)
        if match is None and pending:
            match = pending[-1]
        if match is None:
            continue
        pending.remove(match)
        started, user, session, _ = match
        events.append(
            {
                "event_id": stable_event_id("journal-logon", f"{session}:{started.isoformat()}"),
                "ts": ts,
                "type": "logon",
                "logon_duration_s": round((ts - started).total_seconds(), 3),
                "first_logon": False,
                "source": "journald-logind",
                "_user": user,
            }
        )
    return events


_MAX_SIGN_IN = timedelta(minutes=10)


def _uid_of(name: str) -> str:
    try:
        import pwd

        return str(pwd.getpwnam(name).pw_uid)
    except (KeyError, ImportError):
        return ""


def _field(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, list):  # journald gives repeated fields as a list
        value = value[0] if value else ""
    if not isinstance(value, str):
        return str(value) if isinstance(value, int) else ""  # binary fields come as byte lists
    return value


def _from_usec(usec: str | int) -> datetime:
    try:
        return datetime.fromtimestamp(int(usec) / 1e6, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def classify_package(name: str, action: str) -> str:
    """The wire ``change`` of a package event: kernels and OS release packages are
    ``os_patch`` (when updated or installed), firmware and DKMS/driver packages ``driver``,
    others ``install`` / ``update`` / ``removal`` by action."""
    base = name.split(":", 1)[0]
    if action != "removal":
        if base.startswith(("linux-image", "kernel-core", "kernel-", "linux-signed")) or base in (
            "base-files",
            "systemd",
            "libc6",
            "glibc",
        ):
            return "os_patch"
        if base.startswith(("firmware-", "nvidia-driver", "xserver-xorg-video")) or base.endswith(
            "-dkms"
        ):
            return "driver"
    return action


_DPKG_LINE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?P<action>install|upgrade|remove) "
    r"(?P<pkg>\S+) (?P<old>\S+) (?P<new>\S+)\s*$"
)


def dpkg_changes(
    lines: Iterable[str], local_tz: tzinfo, since: datetime | None = None
) -> list[dict[str, Any]]:
    """``software_change`` events from ``/var/log/dpkg.log`` lines (local time).

    ``install`` → install (``version_to``), ``upgrade`` → update (from and to), ``remove`` →
    removal (``version_from``); ``purge`` and ``status`` lines repeat what those said and are
    skipped. An ``install`` over a version still present (a reinstall) is an update.
    """
    events: list[dict[str, Any]] = []
    for line in lines:
        match = _DPKG_LINE.match(line)
        if match is None:
            continue
        ts = datetime.strptime(match["date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=local_tz)
        ts = ts.astimezone(UTC)
        if since is not None and ts < since:
            continue
        old = None if match["old"] == "<none>" else match["old"]
        new = None if match["new"] == "<none>" else match["new"]
        action = {"install": "install", "upgrade": "update", "remove": "removal"}[match["action"]]
        if action == "install" and old is not None:
            action = "update"
        name = match["pkg"].split(":", 1)[0]
        event: dict[str, Any] = {
            "event_id": stable_event_id("dpkg.log", line.strip()),
            "ts": ts,
            "type": "software_change",
            "change": classify_package(name, action),
            "name": name[:256],
            "source": "dpkg",
        }
        if old is not None:
            event["version_from"] = old[:128]
        if new is not None:
            event["version_to"] = new[:128]
        events.append(event)
    return events


_RPM_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}) SUBDEBUG "
    r"(?P<action>Installed|Upgrade|Upgraded|Erase|Reinstall|Downgrade|Downgraded): "
    r"(?P<nevra>\S+)\s*$"
)
_NEVRA = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+-[^-]+)\.(?P<arch>[^.]+)$")


def rpm_changes(lines: Iterable[str], since: datetime | None = None) -> list[dict[str, Any]]:
    """``software_change`` events from dnf's ``/var/log/dnf.rpm.log`` (``SUBDEBUG`` lines).

    dnf logs an update as ``Upgrade: new`` followed by ``Upgraded: old``; the pair becomes one
    update event with both versions. ``Installed`` → install, ``Erase`` → removal.
    """
    events: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    for line in lines:
        match = _RPM_LINE.match(line)
        if match is None:
            continue
        ts = datetime.strptime(match["ts"], "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        nevra = _NEVRA.match(match["nevra"])
        if nevra is None or (since is not None and ts < since):
            continue
        name, version = nevra["name"], nevra["version"]
        action = match["action"]
        if action in ("Upgraded", "Downgraded"):
            if name in pending:
                pending.pop(name)["version_from"] = version[:128]
            continue
        change = {"Installed": "install", "Erase": "removal"}.get(action, "update")
        event: dict[str, Any] = {
            "event_id": stable_event_id("dnf.rpm.log", line.strip()),
            "ts": ts,
            "type": "software_change",
            "change": classify_package(name, change),
            "name": name[:256],
            "source": "rpm",
        }
        event["version_from" if change == "removal" else "version_to"] = version[:128]
        if change == "update":
            pending[name] = event
        events.append(event)
    return events


def parse_apport_header(text: str) -> dict[str, str]:
    """The ``Key: value`` fields of an apport ``.crash`` file, up to its binary parts.

    Continuation lines (starting with a space) are appended; base64 fields (``CoreDump``)
    are skipped, since only the header matters.
    """
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line.startswith(" "):
            if key is not None and key != "CoreDump":
                fields[key] += "\n" + line[1:]
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            key = None
            continue
        key = name
        if value.strip() == "base64":
            key = "CoreDump"
            continue
        fields[name] = value.strip()
    return fields


def apport_crash(fields: Mapping[str, str], key: str, local_tz: tzinfo) -> dict[str, Any] | None:
    """An ``app_crash`` event from an apport report's header (``ProblemType: Crash``)."""
    if fields.get("ProblemType") != "Crash" or not fields.get("ExecutablePath"):
        return None
    try:
        ts = datetime.strptime(fields.get("Date", ""), "%a %b %d %H:%M:%S %Y")
        when = ts.replace(tzinfo=local_tz).astimezone(UTC)
    except ValueError:
        when = datetime.now(UTC)
    event: dict[str, Any] = {
        "event_id": stable_event_id("apport", key),
        "ts": when,
        "type": "app_crash",
        "app_name": app_name_from_path(fields["ExecutablePath"]),
        "source": "apport",
    }
    package = fields.get("Package", "").split()
    if len(package) >= 2:
        event["app_version"] = package[1][:128]
    if fields.get("Signal", "").isdigit():
        event["exception_code"] = signal_name(fields["Signal"])
    pid = re.search(r"^Pid:\s*(\d+)", fields.get("ProcStatus", ""), re.M)
    if pid:
        event["_pid"] = int(pid.group(1))
    return event


def pstore_panic(name: str, text: str, mtime: datetime) -> dict[str, Any] | None:
    """A ``system_crash`` (kernel panic) from a pstore dump (``dmesg-*`` files), else None.

    The dump holds the end of the kernel log of the crashed boot; its "Kernel panic" (or
    "Oops") line is the detail.
    """
    if not name.startswith("dmesg"):
        return None
    detail = ""
    for line in text.splitlines():
        if "Kernel panic" in line or "Oops" in line or "BUG:" in line:
            detail = re.sub(r"^<\d>\[\s*[\d.]+\]\s*", "", line.strip())
            break
    event: dict[str, Any] = {
        "event_id": stable_event_id("pstore", name),
        "ts": mtime,
        "type": "system_crash",
        "crash_kind": "kernel_panic",
        "source": "pstore",
    }
    if detail:
        event["detail"] = detail[:2000]
    return event


@dataclass(frozen=True)
class WtmpRecord:
    """One ``/var/log/wtmp`` record: its type, user field and time."""

    ut_type: int
    user: str
    line: str
    ts: datetime


_UTMP = struct.Struct("<h2xi32s4s32s256shhiii4i20s")
"""``struct utmp`` on Linux (glibc, x86-64 and aarch64): 384 bytes."""
_BOOT_TIME, _RUN_LVL = 2, 1


def parse_wtmp(data: bytes) -> Iterator[WtmpRecord]:
    """The records of a wtmp file (glibc ``struct utmp``); a trailing partial record is ignored."""
    for offset in range(0, len(data) - _UTMP.size + 1, _UTMP.size):
        fields = _UTMP.unpack_from(data, offset)
        ut_type, line, user, tv_sec = fields[0], fields[2], fields[4], fields[9]
        yield WtmpRecord(
            ut_type,
            user.split(b"\0", 1)[0].decode("utf-8", "replace"),
            line.split(b"\0", 1)[0].decode("utf-8", "replace"),
            datetime.fromtimestamp(tv_sec, UTC),
        )


def unclean_shutdowns(
    records: Iterable[WtmpRecord], since: datetime | None = None
) -> list[dict[str, Any]]:
    """``system_crash`` events for boots that followed a boot with no clean shutdown.

    wtmp gets a ``reboot`` (BOOT_TIME) record at every boot and a ``shutdown`` (RUN_LVL) record
    at every orderly shutdown; a boot record whose predecessor boot had no shutdown record
    means that the previous boot ended by power loss, a hang or a panic. The event's ``ts`` is
    the new boot (when the loss became known).
    """
    events: list[dict[str, Any]] = []
    previous_boot: datetime | None = None
    clean = True
    for record in records:
        if record.ut_type == _BOOT_TIME or (record.user == "reboot" and record.line == "~"):
            if previous_boot is not None and not clean and (since is None or record.ts >= since):
                events.append(
                    {
                        "event_id": stable_event_id("wtmp", record.ts.isoformat()),
                        "ts": record.ts,
                        "type": "system_crash",
                        "crash_kind": "unclean_shutdown",
                        "detail": f"the boot of {previous_boot.isoformat()} ended without a "
                        "clean shutdown",
                        "source": "wtmp",
                    }
                )
            previous_boot, clean = record.ts, False
        elif record.ut_type == _RUN_LVL and record.user == "shutdown":
            clean = True
    return events


def local_offset_tz(now: datetime | None = None) -> tzinfo:
    """This machine's current UTC offset as a fixed tz (for logs written in local time)."""
    here = (now or datetime.now(UTC)).astimezone()
    return timezone(here.utcoffset() or timedelta(0))
