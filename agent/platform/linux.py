"""Linux backend: systemd-analyze, PSI, journald, the kernel log, package logs, wtmp.

The parsers are pure functions on the text the OS prints, tested on recorded output; the
readers around them touch the system and return None when a source is missing (containers
without systemd, kernels without PSI): "no data" is not an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.platform import linux_logs as logs
from agent.platform.common import Harvest, HungApp, load_cursor

__all__ = [
    "Journal",
    "boot_id",
    "boot_phases",
    "crashes_from",
    "foreground_pid",
    "hung_apps",
    "logons_from",
    "parse_duration_s",
    "parse_proc_stat",
    "parse_psi",
    "parse_systemd_analyze",
    "read_app_crashes",
    "read_app_hangs",
    "read_kmsg",
    "read_logons",
    "read_pressure_totals",
    "read_software_changes",
    "read_system_crashes",
    "software_changes_from",
    "system_crashes_from",
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


def boot_phases() -> dict[str, Any] | None:
    """The backend interface's name for :func:`systemd_boot_phases`."""
    return systemd_boot_phases()


def boot_id() -> str | None:
    """The kernel's random id of the current boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


# --- OS log readers (each: cursor in, Harvest out; parsing in agent.platform.linux_logs) ---

_JOURNAL_DIRS = (Path("/run/log/journal"), Path("/var/log/journal"))
_KMSG = Path("/dev/kmsg")
_APPORT_DIR = Path("/var/crash")
_PSTORE_DIR = Path("/sys/fs/pstore")
_WTMP = Path("/var/log/wtmp")
_PACKAGE_LOGS = (("dpkg", Path("/var/log/dpkg.log")), ("rpm", Path("/var/log/dnf.rpm.log")))
_MAX_RECORDS = 2000
"""Records read from one source per call; the cursor carries on next time."""
_MAX_LOG_BYTES = 4 * 1024 * 1024
"""At most this much of a text log is read per call (the rest next time)."""
_PF_KTHREAD = 0x00200000


class Journal:
    """``journalctl`` as a JSON record source: the system journal, or given journal files.

    Tests and forensic runs pass ``files`` (e.g. a journal written by
    ``systemd-journal-remote`` from recorded records); the agent uses the system journal
    when journald keeps one on this machine.
    """

    def __init__(self, files: Sequence[Path] = (), exe: str | None = None) -> None:
        self.files = tuple(files)
        self.exe = exe or shutil.which("journalctl")

    def available(self) -> bool:
        """Whether there is a journal to read (journalctl present and journal files exist)."""
        if self.exe is None:
            return False
        if self.files:
            return all(f.is_file() for f in self.files)
        return any(
            next(d.rglob("*.journal"), None) is not None for d in _JOURNAL_DIRS if d.is_dir()
        )

    def records(
        self,
        matches: Sequence[str],
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int = _MAX_RECORDS,
        timeout_s: float = 20.0,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Records matching ``matches`` (journalctl match syntax) after ``cursor`` (or from
        ``since``), oldest first, at most ``limit``; and the cursor of the last one read."""
        if self.exe is None:
            return [], cursor
        argv = [self.exe, "--output=json", "--no-pager", "--quiet", "--all"]
        argv += [f"--file={f}" for f in self.files]
        if cursor:
            argv.append(f"--after-cursor={cursor}")
        elif since is not None:
            argv.append(f"--since=@{int(since.timestamp())}")
        argv += list(matches)
        records: list[dict[str, Any]] = []
        last = cursor
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError:
            return [], cursor
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
                    last = record.get("__CURSOR", last)
                if len(records) >= limit:
                    break
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:  # pragma: no cover - journalctl stuck
                proc.kill()
        return records, last


def _monotonic_epoch() -> float:
    # kmsg stamps records on the kernel's monotonic clock; anchoring it on the wall clock now
    # (rather than /proc/stat's btime) stays right after a suspended or restored VM.
    return time.time() - time.monotonic()


def read_kmsg(path: Path = _KMSG) -> list[logs.KmsgRecord]:
    """Every record now in the kernel's log buffer (needs root or CAP_SYSLOG)."""
    records: list[logs.KmsgRecord] = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while len(records) < 100_000:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue  # a record was overwritten while we read: go on with the next
            if not raw:
                break
            record = logs.parse_kmsg_record(raw.decode("utf-8", "replace"))
            if record is not None:
                records.append(record)
    finally:
        os.close(fd)
    return records


def crashes_from(
    cursor: str | None,
    since: datetime,
    *,
    journal: Journal,
    kmsg: Path = _KMSG,
    apport_dir: Path = _APPORT_DIR,
) -> Harvest:
    """Application crashes: journald (systemd-coredump records and the kernel's segfault
    lines) where the machine keeps a journal; else ``/dev/kmsg`` segfault/trap lines and
    apport reports in ``/var/crash``. One crash seen by two sources is reported once (by pid).
    """
    state = load_cursor(cursor)
    recent: list[int] = [p for p in state.get("pids", []) if isinstance(p, int)]
    events: list[dict[str, Any]] = []
    if journal.available():
        records, position = journal.records(
            [f"MESSAGE_ID={logs.COREDUMP_MESSAGE_ID}", "+", "_TRANSPORT=kernel"],
            cursor=state.get("journal"),
            since=since,
        )
        for record in records:
            event = logs.coredump_crash(record)
            if event is None and record.get("_TRANSPORT") == "kernel":
                message = record.get("MESSAGE")
                if isinstance(message, str):
                    ts = datetime.fromtimestamp(
                        int(record.get("__REALTIME_TIMESTAMP", 0)) / 1e6, UTC
                    )
                    event = logs.kmsg_crash(message, ts, str(record.get("__CURSOR", message)))
            if event is not None:
                events.append(event)
        new_state: dict[str, Any] = {"journal": position}
        source, degraded = "journald", None
    else:
        new_state = {}
        source = "kmsg+apport"
        degraded = "no journald: reading /dev/kmsg and /var/crash"
        boot = boot_id() or ""
        kstate: dict[str, Any] = state["kmsg"] if isinstance(state.get("kmsg"), dict) else {}
        last_seq = int(kstate.get("seq", -1)) if kstate and kstate.get("boot") == boot else -1
        try:
            krecords = read_kmsg(kmsg)
        except OSError as exc:
            krecords = []
            degraded = f"no journald, and /dev/kmsg is not readable ({exc.strerror})"
        booted = _monotonic_epoch()
        for krecord in krecords:
            if krecord.seq <= last_seq:
                continue
            last_seq = krecord.seq
            ts = datetime.fromtimestamp(booted + krecord.usec / 1e6, UTC)
            if ts < since:
                continue
            event = logs.kmsg_crash(krecord.message, ts, f"{boot}:{krecord.seq}")
            if event is not None:
                events.append(event)
        new_state["kmsg"] = {"boot": boot, "seq": last_seq}
        seen: dict[str, Any] = state["apport"] if isinstance(state.get("apport"), dict) else {}
        new_seen: dict[str, float] = {}
        tz = logs.local_offset_tz()
        for report in sorted(apport_dir.glob("*.crash"))[:200] if apport_dir.is_dir() else []:
            try:
                mtime = report.stat().st_mtime
                new_seen[report.name] = mtime
                if seen.get(report.name) == mtime or mtime < since.timestamp():
                    continue
                with report.open("rb") as fh:
                    header = fh.read(64 * 1024).decode("utf-8", "replace")
            except OSError:
                continue  # apport writes reports 0640 root:whoopsie; unreadable is skipped
            event = logs.apport_crash(
                logs.parse_apport_header(header), f"{report.name}:{mtime}", tz
            )
            if event is not None:
                events.append(event)
        new_state["apport"] = new_seen
    unique: list[dict[str, Any]] = []
    # One crash may be both a coredump record and a kernel line: keep the coredump (it has
    # the executable and the package version); stable sort, then back to time order.
    events.sort(key=lambda e: e["source"] != "systemd-coredump")
    for event in events:
        pid = event.pop("_pid", None)
        if pid is not None and pid in recent:
            continue
        if pid is not None:
            recent.append(pid)
        unique.append(event)
    new_state["pids"] = recent[-64:]
    unique.sort(key=lambda e: e["ts"])
    return Harvest(unique, json.dumps(new_state), source, degraded)


def read_app_crashes(cursor: str | None, since: datetime) -> Harvest:
    """Application crashes on this machine (see :func:`crashes_from`)."""
    return crashes_from(cursor, since, journal=Journal())


def read_app_hangs(cursor: str | None, since: datetime) -> Harvest:
    """Linux keeps no log of application hangs: hangs are sampled (see :func:`hung_apps`)."""
    return Harvest([], cursor, "none", None)


def logons_from(cursor: str | None, since: datetime, *, journal: Journal) -> Harvest:
    """Desktop sign-ins from the journal (see :func:`logs.journal_logons`).

    The journal is read again from 10 minutes before the last reported sign-in, so a session
    whose start and desktop-ready records fall in two reads still pairs; events already
    reported are skipped by time.
    """
    if not journal.available():
        return Harvest(
            [], cursor, "none", "no journald: sign-in durations need systemd-logind records"
        )
    state = load_cursor(cursor)
    last = datetime.fromisoformat(state["last"]) if "last" in state else since
    records, _ = journal.records(
        [
            f"MESSAGE_ID={logs.SESSION_START_MESSAGE_ID}",
            f"MESSAGE_ID={logs.TARGET_REACHED_MESSAGE_ID}",
        ],
        since=last - timedelta(minutes=10),
    )
    events = [e for e in logs.journal_logons(records) if e["ts"] > last]
    if events:
        last = max(e["ts"] for e in events)
    return Harvest(events, json.dumps({"last": last.isoformat()}), "journald", None)


def read_logons(cursor: str | None, since: datetime) -> Harvest:
    """Desktop sign-ins on this machine (see :func:`logons_from`)."""
    return logons_from(cursor, since, journal=Journal())


def system_crashes_from(
    cursor: str | None, since: datetime, *, wtmp: Path = _WTMP, pstore: Path = _PSTORE_DIR
) -> Harvest:
    """Unclean shutdowns (a boot in wtmp with no shutdown record before it) and kernel
    panics kept by pstore across the reboot."""
    state = load_cursor(cursor)
    events: list[dict[str, Any]] = []
    after = datetime.fromisoformat(state["wtmp"]) if "wtmp" in state else since
    try:
        data = wtmp.read_bytes()[-4 * 1024 * 1024 :]
        data = data[len(data) % 384 :]
        found = logs.unclean_shutdowns(logs.parse_wtmp(data))
        events += [e for e in found if e["ts"] > after]
    except OSError:
        pass
    newest = max((e["ts"] for e in events), default=after)
    seen = set(state.get("pstore", []))
    names: list[str] = []
    if pstore.is_dir():
        for dump in sorted(pstore.iterdir())[:100]:
            names.append(dump.name)
            if dump.name in seen:
                continue
            try:
                text = dump.read_bytes()[: 256 * 1024].decode("utf-8", "replace")
                mtime = datetime.fromtimestamp(dump.stat().st_mtime, UTC)
            except OSError:
                continue
            event = logs.pstore_panic(dump.name, text, mtime)
            if event is not None:
                events.append(event)
    cursor_out = json.dumps({"wtmp": newest.isoformat(), "pstore": names})
    return Harvest(events, cursor_out, "wtmp+pstore", None)


def read_system_crashes(cursor: str | None, since: datetime) -> Harvest:
    """System crashes and unclean shutdowns on this machine (see
    :func:`system_crashes_from`)."""
    return system_crashes_from(cursor, since)


def _read_new(path: Path, state: Mapping[str, Any]) -> tuple[list[str], dict[str, int]]:
    """Lines appended to ``path`` since ``state`` (inode and offset), following a rotation
    to ``path.1``; at most :data:`_MAX_LOG_BYTES` per call."""
    try:
        st = path.stat()
    except OSError:
        return [], dict(state)
    chunks: list[bytes] = []
    ino, offset = state.get("ino"), int(state.get("off", 0))
    if ino is not None and ino != st.st_ino:
        rotated = path.with_name(path.name + ".1")
        try:
            if rotated.stat().st_ino == ino:
                with rotated.open("rb") as fh:
                    fh.seek(offset)
                    chunks.append(fh.read(_MAX_LOG_BYTES))
        except OSError:
            pass
        offset = 0
    elif ino is None:
        offset = max(0, st.st_size - _MAX_LOG_BYTES)
    if st.st_size < offset:
        offset = 0  # truncated
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read(_MAX_LOG_BYTES)
    cut = data.rfind(b"\n") + 1  # keep a half-written last line for next time
    chunks.append(data[:cut])
    text = b"".join(chunks).decode("utf-8", "replace")
    return text.splitlines(), {"ino": st.st_ino, "off": offset + cut}


def software_changes_from(
    cursor: str | None,
    since: datetime,
    logs_: Sequence[tuple[str, Path]] = _PACKAGE_LOGS,
) -> Harvest:
    """Package installs, updates and removals from dpkg's and dnf's logs (followed by
    inode and offset, across a log rotation)."""
    state = load_cursor(cursor)
    first = not state
    events: list[dict[str, Any]] = []
    new_state: dict[str, Any] = {}
    sources: list[str] = []
    tz = logs.local_offset_tz()
    for kind, path in logs_:
        if not path.exists():
            continue
        sources.append(kind)
        lines, new_state[kind] = _read_new(path, state.get(kind, {}))
        floor = since if first else None
        if kind == "dpkg":
            events += logs.dpkg_changes(lines, tz, floor)
        else:
            events += logs.rpm_changes(lines, floor)
    degraded = None if sources else "no package manager log found (dpkg.log, dnf.rpm.log)"
    return Harvest(events, json.dumps(new_state), "+".join(sources) or "none", degraded)


def read_software_changes(cursor: str | None, since: datetime) -> Harvest:
    """Software changes on this machine (see :func:`software_changes_from`)."""
    return software_changes_from(cursor, since)


def parse_proc_stat(text: str) -> tuple[int, str, str, int, int] | None:
    """``(pid, comm, state, ppid, flags)`` from a ``/proc/PID/stat`` line (comm may hold
    spaces and parentheses: it spans to the last ``)``)."""
    open_, close = text.find("("), text.rfind(")")
    if open_ < 0 or close < open_:
        return None
    rest = text[close + 2 :].split()
    try:
        return int(text[:open_]), text[open_ + 1 : close], rest[0], int(rest[1]), int(rest[6])
    except (ValueError, IndexError):
        return None


def hung_apps(proc: Path = Path("/proc")) -> list[HungApp]:
    """User processes in uninterruptible sleep (``D``) now: stuck on I/O or a driver.

    Kernel threads are skipped. One sample proves nothing (a disk read is a short D); the
    ``app_hang`` sampler reports a process only while it stays in D across samples.
    """
    hung: list[HungApp] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parsed = parse_proc_stat((entry / "stat").read_text())
        except OSError:
            continue
        if parsed is None:
            continue
        pid, comm, state, _ppid, flags = parsed
        if state == "D" and not flags & _PF_KTHREAD:
            hung.append(HungApp(pid=pid, app_name=comm[:256] or "unknown", reason="d_state"))
    return hung


def foreground_pid() -> int | None:
    """Not read on Linux: the agent runs as a system service, outside the user's X11 or
    Wayland session, and Wayland does not tell other processes which window has focus."""
    return None
