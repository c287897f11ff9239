"""The Linux backend against this machine's real sources: a real crash, a real package
installed, upgraded and removed, and real journal files read by the real journalctl."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.platform import linux
from tests.agent.linux_env import (
    build_deb,
    crash_with_sigsegv,
    dpkg_usable,
    kmsg_readable,
    load_records,
    write_journal,
)

FIXTURES = Path(__file__).parent / "fixtures" / "linux"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def test_a_real_segfault_is_reported_once() -> None:
    journal = linux.Journal()
    if not journal.available() and not kmsg_readable():
        pytest.skip("neither a journal nor /dev/kmsg is readable here (not root?)")
    since = datetime.now(UTC) - timedelta(minutes=5)
    before = linux.crashes_from(None, since, journal=journal)
    name = f"dx{uuid.uuid4().hex[:10]}"  # unique: the kernel log keeps earlier runs' crashes
    pid = crash_with_sigsegv(name)
    found: list[dict[str, object]] = []
    cursor = before.cursor
    for _ in range(50):  # the kernel logs at once; journald may take a moment
        harvest = linux.crashes_from(cursor, since, journal=journal)
        cursor = harvest.cursor
        found += [e for e in harvest.events if e["app_name"] == name]
        if found:
            break
        time.sleep(0.1)
    assert len(found) == 1, found
    crash = found[0]
    assert crash["exception_code"] == "SIGSEGV"
    assert crash["source"] in ("kernel-log", "systemd-coredump")
    assert "_pid" not in crash
    if not journal.available():
        assert harvest.degraded == "no journald: reading /dev/kmsg and /var/crash"
    assert pid not in crash.values()  # the kernel line named the pid; the event does not
    again = linux.crashes_from(cursor, since, journal=journal)
    assert [e for e in again.events if e["app_name"] == name] == []


def test_journald_records_through_a_real_journal_file(tmp_path: Path) -> None:
    journal_file = write_journal(
        load_records(FIXTURES / "journal-records.json"), tmp_path / "recorded.journal"
    )
    journal = linux.Journal(files=[journal_file])
    assert journal.available()
    crashes = linux.crashes_from(None, EPOCH, journal=journal)
    assert crashes.source == "journald" and crashes.degraded is None
    # evince is both a kernel segfault line and a coredump record: reported once, from the
    # coredump (which has the package version)
    assert [(e["app_name"], e["source"], e.get("app_version")) for e in crashes.events] == [
        ("evince", "systemd-coredump", "43.1-2+b1"),
        ("soffice.bin", "systemd-coredump", None),
    ]
    assert linux.crashes_from(crashes.cursor, EPOCH, journal=journal).events == []
    logons = linux.logons_from(None, EPOCH, journal=journal)
    assert [(e["logon_duration_s"], e["_user"]) for e in logons.events] == [(3.5, "alice")]
    assert linux.logons_from(logons.cursor, EPOCH, journal=journal).events == []


def test_without_a_journal_the_reader_says_so() -> None:
    missing = linux.Journal(files=[Path("/nonexistent/system.journal")])
    assert not missing.available()
    harvest = linux.logons_from(None, EPOCH, journal=missing)
    assert harvest.events == [] and "no journald" in (harvest.degraded or "")


def test_a_real_package_install_upgrade_and_removal(tmp_path: Path) -> None:
    reason = dpkg_usable()
    if reason:
        pytest.skip(reason)
    name = "dexscope-selftest"
    subprocess.run(["dpkg", "--purge", name], capture_output=True)
    start = linux.read_software_changes(None, datetime.now(UTC))
    v1, v2 = build_deb(tmp_path, name, "1.0-1"), build_deb(tmp_path, name, "1.1-1")
    try:
        for deb in (v1, v2):
            subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)
    finally:
        subprocess.run(["dpkg", "--purge", name], check=True, capture_output=True)
    harvest = linux.read_software_changes(start.cursor, EPOCH)
    ours = [
        (e["change"], e.get("version_from"), e.get("version_to"))
        for e in harvest.events
        if e["name"] == name
    ]
    assert ours == [
        ("install", None, "1.0-1"),
        ("update", "1.0-1", "1.1-1"),
        ("removal", "1.1-1", None),
    ]
    assert harvest.source == "dpkg"
    assert [
        e for e in linux.read_software_changes(harvest.cursor, EPOCH).events if e["name"] == name
    ] == []
