"""The Linux log parsers on recorded real-format input (golden fixtures)."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from agent.jsonutil import dumps
from agent.platform import linux, linux_logs
from collector.ingest.schemas import EVENT

FIXTURES = Path(__file__).parent / "fixtures" / "linux"
UTC_TZ = timezone.utc  # noqa: UP017 - the parsers take any tzinfo


def valid(event: dict[str, object]) -> dict[str, object]:
    """The event with private keys dropped, after the collector's strict validation."""
    public = {k: v for k, v in event.items() if not k.startswith("_")}
    EVENT.validate_python(json.loads(dumps(public)))
    return public


def test_kmsg_records_and_segfault_lines() -> None:
    record = linux_logs.parse_kmsg_record((FIXTURES / "kmsg-segfault.txt").read_text())
    assert record is not None and record.seq == 1201 and record.usec == 7345678901
    ts = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    event = linux_logs.kmsg_crash(record.message, ts, "boot:1201")
    assert event is not None
    assert valid(event) | {"event_id": None} == {
        "event_id": None,
        "ts": ts,
        "type": "app_crash",
        "app_name": "firefox-esr",
        "exception_code": "SIGSEGV",
        "faulting_module": "libxul.so",
        "source": "kernel-log",
    }
    assert event["_pid"] == 5123
    trap = linux_logs.parse_kmsg_record((FIXTURES / "kmsg-trap.txt").read_text())
    assert trap is not None
    gp = linux_logs.kmsg_crash(trap.message, ts, "boot:1202")
    assert gp is not None and gp["app_name"] == "soffice.bin"
    assert gp["faulting_module"] == "libmergedlo.so" and gp["exception_code"] == "SIGSEGV"
    assert linux_logs.kmsg_crash("usb 1-1: new high-speed USB device", ts, "k") is None
    assert linux_logs.parse_kmsg_record("no semicolon here") is None
    assert linux_logs.parse_kmsg_record("6,x,y,-;text") is None


def test_same_record_same_event_id() -> None:
    ts = datetime(2026, 11, 20, tzinfo=UTC)
    line = "a[1]: segfault at 0 ip 0 sp 0 error 6"
    first = linux_logs.kmsg_crash(line, ts, "boot:7")
    again = linux_logs.kmsg_crash(line, ts, "boot:7")
    other = linux_logs.kmsg_crash(line, ts, "boot:8")
    assert first and again and other
    assert first["event_id"] == again["event_id"] != other["event_id"]


def test_journal_coredump_and_logon_records() -> None:
    records = json.loads((FIXTURES / "journal-records.json").read_text())
    crashes = [e for r in records if (e := linux_logs.coredump_crash(r)) is not None]
    assert [(c["app_name"], c.get("app_version"), c["exception_code"]) for c in crashes] == [
        ("evince", "43.1-2+b1", "SIGSEGV"),
        ("soffice.bin", None, "SIGABRT"),
    ]
    assert crashes[0]["ts"] == datetime.fromtimestamp(1763647320.412, UTC)
    for crash in crashes:
        text = json.dumps(valid(crash), default=str)
        assert "/home/alice" not in text and "contract.pdf" not in text
    logons = linux_logs.journal_logons(records)
    assert len(logons) == 1  # bob's session never reached a desktop (an SSH login)
    logon = logons[0]
    assert logon["logon_duration_s"] == 3.5 and logon["_user"] == "alice"
    assert logon["first_logon"] is False and logon["source"] == "journald-logind"
    assert "alice" not in json.dumps(valid(logon), default=str)


def test_dpkg_log() -> None:
    lines = (FIXTURES / "dpkg.log").read_text().splitlines()
    events = linux_logs.dpkg_changes(lines, UTC_TZ)
    summary = [(e["change"], e["name"], e.get("version_from"), e.get("version_to")) for e in events]
    assert summary == [
        ("update", "firefox-esr", "115.16.0esr-1~deb12u1", "115.17.0esr-1~deb12u1"),
        ("os_patch", "linux-image-6.1.0-27-amd64", None, "6.1.115-1"),
        ("install", "zoom", None, "6.2.5.2440"),
        ("removal", "teams", "1.5.00.23861", None),
        ("driver", "firmware-iwlwifi", None, "20230210-5"),
        ("update", "firefox-esr", "115.17.0esr-1~deb12u1", "115.17.0esr-1~deb12u1"),
    ]
    assert all(valid(e)["source"] == "dpkg" for e in events)
    since = datetime(2026, 11, 21, tzinfo=UTC)
    assert next(e["name"] for e in linux_logs.dpkg_changes(lines, UTC_TZ, since)) == "teams"
    plus_two = timezone(timedelta(hours=2))
    local = linux_logs.dpkg_changes(lines[:2], plus_two)
    assert local[0]["ts"] == datetime(2026, 11, 20, 6, 14, 3, tzinfo=UTC)


def test_dnf_rpm_log() -> None:
    events = linux_logs.rpm_changes((FIXTURES / "dnf.rpm.log").read_text().splitlines())
    summary = [(e["change"], e["name"], e.get("version_from"), e.get("version_to")) for e in events]
    assert summary == [
        ("update", "firefox", "131.0.3-1.fc41", "132.0-1.fc41"),
        ("os_patch", "kernel-core", None, "6.11.8-300.fc41"),
        ("install", "zoom", None, "6.2.5.2440-1"),
        ("removal", "teams", "1.5.00.23861-1", None),
    ]
    for event in events:
        valid(event)


def test_apport_report_header_only_and_no_personal_data() -> None:
    text = (FIXTURES / "_usr_bin_gedit.1000.crash").read_text()
    fields = linux_logs.parse_apport_header(text)
    assert fields["ExecutablePath"] == "/usr/bin/gedit" and "CoreDump" not in fields
    event = linux_logs.apport_crash(fields, "gedit:1", UTC_TZ)
    assert event is not None and event["_pid"] == 48211
    public = valid(event)
    assert public["app_name"] == "gedit" and public["app_version"] == "46.2-1build1"
    assert public["exception_code"] == "SIGSEGV"
    assert public["ts"] == datetime(2026, 11, 20, 14, 3, 11, tzinfo=UTC)
    assert "alice" not in json.dumps(public, default=str)
    assert linux_logs.apport_crash({"ProblemType": "Bug"}, "x", UTC_TZ) is None


def _utmp(ut_type: int, user: str, line: str, when: datetime) -> bytes:
    return struct.pack(
        "<h2xi32s4s32s256shhiii4i20s",
        ut_type,
        0,
        line.encode(),
        b"",
        user.encode(),
        b"6.1.0",
        0,
        0,
        0,
        int(when.timestamp()),
        0,
        0,
        0,
        0,
        0,
        b"",
    )


def test_wtmp_unclean_shutdowns(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
    data = b"".join(
        [
            _utmp(2, "reboot", "~", t0),
            _utmp(7, "alice", "tty2", t0 + timedelta(minutes=2)),
            _utmp(1, "shutdown", "~~", t0 + timedelta(hours=9)),  # clean
            _utmp(2, "reboot", "~", t0 + timedelta(days=1)),
            # no shutdown record: power lost or hung
            _utmp(2, "reboot", "~", t0 + timedelta(days=2)),
        ]
    )
    records = list(linux_logs.parse_wtmp(data + b"\0" * 17))  # a torn last record
    assert [r.user for r in records] == ["reboot", "alice", "shutdown", "reboot", "reboot"]
    events = linux_logs.unclean_shutdowns(records)
    assert len(events) == 1
    assert valid(events[0])["ts"] == t0 + timedelta(days=2)
    assert events[0]["crash_kind"] == "unclean_shutdown"
    # Through the reader, with a pstore panic beside it; a second read reports nothing new.
    wtmp = tmp_path / "wtmp"
    wtmp.write_bytes(data)
    pstore = tmp_path / "pstore"
    pstore.mkdir()
    (pstore / "dmesg-efi-176364000001").write_text(
        "<0>[ 812.1] Kernel panic - not syncing: Fatal exception in interrupt\n<0>[ 812.2] ---\n"
    )
    (pstore / "console-ramoops-0").write_text("not a panic dump")
    since = t0 - timedelta(days=1)
    harvest = linux.system_crashes_from(None, since, wtmp=wtmp, pstore=pstore)
    kinds = sorted((e["crash_kind"], e.get("detail", "")[:22]) for e in harvest.events)
    assert kinds == [
        ("kernel_panic", "Kernel panic - not syn"),
        ("unclean_shutdown", "the boot of 2026-11-19"),
    ]
    for event in harvest.events:
        valid(event)
    again = linux.system_crashes_from(harvest.cursor, since, wtmp=wtmp, pstore=pstore)
    assert again.events == []


def test_hung_processes_from_a_recorded_proc() -> None:
    hung = linux.hung_apps(FIXTURES / "proc")
    # the kernel worker in D is skipped; the user process in D is reported by its comm
    assert [(h.pid, h.app_name, h.reason) for h in hung] == [(1740, "Web Content (x)", "d_state")]
    assert linux.parse_proc_stat("garbage") is None


def test_package_log_follows_appends_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "dpkg.log"
    lines = (FIXTURES / "dpkg.log").read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:6]))
    since = datetime(2026, 1, 1, tzinfo=UTC)
    first = linux.software_changes_from(None, since, [("dpkg", log)])
    assert [e["name"] for e in first.events] == ["firefox-esr"]
    assert linux.software_changes_from(first.cursor, since, [("dpkg", log)]).events == []
    with log.open("a") as fh:
        fh.write("".join(lines[6:11]))
    second = linux.software_changes_from(first.cursor, since, [("dpkg", log)])
    assert [e["name"] for e in second.events] == ["linux-image-6.1.0-27-amd64", "zoom"]
    # logrotate: dpkg.log → dpkg.log.1 (with one more line written before the move)
    with log.open("a") as fh:
        fh.write(lines[11])
    log.rename(tmp_path / "dpkg.log.1")
    log.write_text("".join(lines[15:]))  # ends with a half-written line
    third = linux.software_changes_from(second.cursor, since, [("dpkg", log)])
    assert [e["name"] for e in third.events] == ["teams", "firmware-iwlwifi", "firefox-esr"]
    with log.open("a") as fh:  # the half-written line is completed: read now, once
        fh.write("00 install slack:amd64 <none> 4.41.97\n")
    fourth = linux.software_changes_from(third.cursor, since, [("dpkg", log)])
    assert [(e["name"], e["version_to"]) for e in fourth.events] == [("slack", "4.41.97")]
