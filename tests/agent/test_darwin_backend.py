"""The macOS backend on recorded reports, plists and unified-log output (runs on any OS)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import jsonutil
from agent.platform import darwin
from agent.platform import darwin_reports as reports
from agent.platform.common import stable_event_id
from collector.ingest.schemas import EVENT

FIXTURES = Path(__file__).parent / "fixtures" / "macos"
SINCE = datetime(2024, 3, 1, tzinfo=UTC)
CRASH = "zoom.us-2024-03-12-101530.ips"
GARBAGE = "zoom.us-2024-03-12-101999.ips"
HANG = "Microsoft Word_2024-03-13-143005_MacBook-Pro.hang"
SPIN = "Finder_2024-03-13-150000_MacBook-Pro.spin"
PANIC = "panic-full-2024-03-14-083112.0002.panic"


def _valid(events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        assert not any(k.startswith("_") for k in event)
        EVENT.validate_python(json.loads(jsonutil.dumps(event)))
        text = jsonutil.dumps(event)
        assert "/Users/" not in text and "alice" not in text and ".docx" not in text


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "DiagnosticReports"
    folder.mkdir()
    stamp = datetime(2024, 3, 12, 9, 0, tzinfo=UTC).timestamp()
    for offset, name in enumerate((CRASH, GARBAGE, HANG, SPIN, PANIC)):
        shutil.copy(FIXTURES / name, folder / name)
        os.utime(folder / name, (stamp + offset * 60, stamp + offset * 60))
    return folder


def _runner(*outputs: str) -> tuple[list[list[str]], darwin.Runner]:
    calls: list[list[str]] = []
    queue = list(outputs)

    def run(argv: Sequence[str]) -> str | None:
        calls.append(list(argv))
        return queue.pop(0) if queue else ""

    return calls, run


def test_crash_report_parsed_exactly(reports_dir: Path) -> None:
    harvest = darwin.app_crashes_from(None, SINCE, dirs=[reports_dir])
    assert harvest.source == "DiagnosticReports"
    assert harvest.events == [
        {
            "event_id": stable_event_id(
                "DiagnosticReports", "6E3B1F0C-9A7D-4C2E-8B5A-1D2F3E4A5B6C"
            ),
            "ts": datetime(2024, 3, 12, 9, 15, 30, tzinfo=UTC),
            "type": "app_crash",
            "app_name": "zoom.us",
            "app_version": "5.17.11",
            "exception_code": "EXC_BAD_ACCESS (SIGSEGV)",
            "faulting_module": "libobjc.A.dylib",
            "source": "DiagnosticReports",
        }
    ]
    assert harvest.degraded is not None and "1 report(s) skipped" in harvest.degraded  # garbage
    _valid(harvest.events)
    again = darwin.app_crashes_from(harvest.cursor, SINCE, dirs=[reports_dir])
    assert again.events == [] and again.degraded is None


def test_new_report_after_cursor_is_read_once(reports_dir: Path) -> None:
    first = darwin.app_crashes_from(None, SINCE, dirs=[reports_dir])
    late = reports_dir / "zoom.us-2024-03-12-120000.ips"
    text = (FIXTURES / CRASH).read_text().replace("6E3B1F0C-9A7D", "7F4C2A1D-0B8E", 1)
    late.write_text(text)
    stamp = datetime(2024, 3, 12, 12, 0, tzinfo=UTC).timestamp()
    os.utime(late, (stamp, stamp))
    second = darwin.app_crashes_from(first.cursor, SINCE, dirs=[reports_dir])
    assert [e["event_id"] for e in second.events] == [
        stable_event_id("DiagnosticReports", "7F4C2A1D-0B8E-4C2E-8B5A-1D2F3E4A5B6C")
    ]
    assert darwin.app_crashes_from(second.cursor, SINCE, dirs=[reports_dir]).events == []


def test_reports_older_than_since_are_left_out(reports_dir: Path) -> None:
    late = datetime(2024, 4, 1, tzinfo=UTC)
    assert darwin.app_crashes_from(None, late, dirs=[reports_dir]).events == []


def test_oversized_report_skipped(reports_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(darwin, "MAX_REPORT_BYTES", 100)
    harvest = darwin.app_crashes_from(None, SINCE, dirs=[reports_dir])
    assert harvest.events == []
    assert harvest.degraded is not None and "skipped" in harvest.degraded


def test_hang_report_parsed_exactly(reports_dir: Path) -> None:
    harvest = darwin.app_hangs_from(None, SINCE, dirs=[reports_dir])
    assert harvest.events == [
        {
            "event_id": stable_event_id(
                "DiagnosticReports", "3F2E1D0C-B9A8-4765-8321-0FEDCBA98765"
            ),
            "ts": datetime(2024, 3, 13, 13, 29, 55, 322000, tzinfo=UTC),
            "type": "app_hang",
            "app_name": "Microsoft Word",
            "app_version": "16.82",
            "hang_duration_s": 9.56,
            "source": "DiagnosticReports",
        }
    ]  # the .spin report is a CPU-usage report, not a hang
    _valid(harvest.events)
    assert darwin.app_hangs_from(harvest.cursor, SINCE, dirs=[reports_dir]).events == []


def test_kernel_panic_and_shutdown_causes(reports_dir: Path) -> None:
    calls, run = _runner((FIXTURES / "shutdown-cause.ndjson").read_text())
    harvest = darwin.system_crashes_from(None, SINCE, dirs=[reports_dir], run=run)
    assert harvest.source == "DiagnosticReports+unifiedlog"
    assert harvest.events == [
        {
            "event_id": stable_event_id(
                "DiagnosticReports", "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF"
            ),
            "ts": datetime(2024, 3, 14, 7, 31, 12, tzinfo=UTC),
            "type": "system_crash",
            "crash_kind": "kernel_panic",
            "detail": "panic(cpu 4 caller 0xfffffe0026e8bd40): watchdog timeout: no checkins "
            "from watchdogd in 90 seconds (30 total checkins since monitoring last enabled)",
            "source": "DiagnosticReports",
        },
        {
            "event_id": stable_event_id(
                "unifiedlog-shutdown-cause", "8C2D4E6F-1A3B-4C5D-9E7F-0A1B2C3D4E5F"
            ),
            "ts": datetime(2024, 3, 14, 7, 31, 40, 554201, tzinfo=UTC),
            "type": "system_crash",
            "crash_kind": "unexpected_shutdown",
            "detail": "previous shutdown cause -128: hardware shutdown, cause unknown",
            "source": "unifiedlog-smc",
        },
        {
            "event_id": stable_event_id(
                "unifiedlog-shutdown-cause", "66666666-7777-4888-9999-AAAAAAAAAAAA"
            ),
            "ts": datetime(2024, 3, 16, 6, 59, 2, 100000, tzinfo=UTC),
            "type": "system_crash",
            "crash_kind": "unclean_shutdown",
            "detail": "previous shutdown cause 3: forced by holding the power button",
            "source": "unifiedlog-smc",
        },
    ]  # cause 5 (a normal shut down) gives nothing
    argv = calls[0]
    assert argv[:4] == [darwin.LOG_EXE, "show", "--style", "ndjson"]
    assert argv[argv.index("--start") + 1] == "2024-03-01 00:00:00+0000"
    assert "previous shutdown cause" in argv[argv.index("--predicate") + 1]
    _valid(harvest.events)
    _, replay = _runner((FIXTURES / "shutdown-cause.ndjson").read_text())
    again = darwin.system_crashes_from(harvest.cursor, SINCE, dirs=[reports_dir], run=replay)
    assert again.events == []


def test_truncated_panic_body_still_gives_the_panic_line() -> None:
    text = (FIXTURES / PANIC).read_text()
    cut = text[: text.index('"panicFlags"')]
    event = reports.panic_event(cut, PANIC, SINCE)
    assert event is not None and event["detail"].startswith("panic(cpu 4 caller")


def test_legacy_text_panic_and_user_folders_scrubbed() -> None:
    text = "panic(cpu 0 caller 0xffffff80): open /Users/alice/x failed\nBacktrace...\n"
    event = reports.panic_event(text, "Kernel-2019.panic", SINCE)
    assert event is not None
    assert event["detail"] == "panic(cpu 0 caller 0xffffff80): open /Users/…/x failed"
    assert event["ts"] == SINCE


def test_garbage_is_not_fatal() -> None:
    assert reports.panic_event("not a report", "x.panic", SINCE) is None
    assert reports.hang_event("", "x.hang", SINCE) is None
    with pytest.raises(ValueError):
        reports.parse_ips("garbage\n{}")
    header, body, _ = reports.parse_ips('{"bug_type":"309","app_name":"a"}\n{"threads": [')
    assert body is None
    assert reports.crash_event(header, body, "k", SINCE) == {
        "event_id": stable_event_id("DiagnosticReports", "k"),
        "ts": SINCE,
        "type": "app_crash",
        "app_name": "a",
        "source": "DiagnosticReports",
    }


def test_software_changes_from_install_history(tmp_path: Path) -> None:
    plist = tmp_path / "InstallHistory.plist"
    shutil.copy(FIXTURES / "InstallHistory.plist", plist)
    harvest = darwin.software_changes_from(None, SINCE, path=plist)
    got = [
        (e["change"], e["name"], e.get("version_from"), e.get("version_to")) for e in harvest.events
    ]
    assert got == [
        ("os_patch", "macOS Sonoma 14.3.1", None, "14.3.1"),
        ("install", "Microsoft Teams", None, "24033.811.2738.2546"),
        ("install", "Microsoft AutoUpdate", None, "4.68"),
        ("update", "Slack", "4.36.140", "4.37.94"),
    ]  # XProtect data (config-data) is not a software change; the January install is too old
    assert harvest.events[3]["ts"] == datetime(2024, 3, 13, 7, 30, 18, tzinfo=UTC)
    assert all(e["source"] == "InstallHistory" for e in harvest.events)
    _valid(harvest.events)
    assert darwin.software_changes_from(harvest.cursor, SINCE, path=plist).events == []


def test_install_history_entries_at_the_cursor_date_are_not_lost(tmp_path: Path) -> None:
    plist = tmp_path / "InstallHistory.plist"
    shutil.copy(FIXTURES / "InstallHistory.plist", plist)
    cutoff = datetime(2024, 3, 12, 8, 3, 55, tzinfo=UTC)
    entries = reports.parse_install_history(plist.read_bytes())
    seen_then = [
        e for e in entries if e["date"] <= cutoff and e["displayName"] != "Microsoft AutoUpdate"
    ]
    first, at = reports.install_history_changes(seen_then, SINCE)
    assert [e["name"] for e in first][-1] == "Microsoft Teams"
    events, _ = reports.install_history_changes(entries, cutoff, at)
    assert [e["name"] for e in events] == ["Microsoft AutoUpdate", "Slack"]


def test_malformed_install_history_is_not_fatal(tmp_path: Path) -> None:
    plist = tmp_path / "InstallHistory.plist"
    plist.write_bytes(b"<?xml version='1.0'?><plist><array><dict><key>date")
    harvest = darwin.software_changes_from("{}", SINCE, path=plist)
    assert harvest.events == [] and harvest.degraded == "InstallHistory.plist is malformed"
    missing = darwin.software_changes_from(None, SINCE, path=tmp_path / "none.plist")
    assert missing.events == [] and missing.source == "none"


def test_logons_from_unified_log() -> None:
    text = (FIXTURES / "logon.ndjson").read_text()
    calls, run = _runner(text)
    harvest = darwin.logons_from(None, SINCE, run=run)
    assert harvest.events == [
        {
            "event_id": stable_event_id(
                "unifiedlog-logon",
                "8C2D4E6F-1A3B-4C5D-9E7F-0A1B2C3D4E5F:2024-03-12T07:58:40.118342+00:00",
            ),
            "ts": datetime(2024, 3, 12, 7, 58, 46, 512907, tzinfo=UTC),
            "type": "logon",
            "logon_duration_s": 6.395,
            "first_logon": False,
            "source": "unifiedlog-loginwindow",
        },
        {
            "event_id": stable_event_id(
                "unifiedlog-logon",
                "8C2D4E6F-1A3B-4C5D-9E7F-0A1B2C3D4E5F:2024-03-12T16:40:03.250000+00:00",
            ),
            "ts": datetime(2024, 3, 12, 16, 40, 15, 750000, tzinfo=UTC),
            "type": "logon",
            "logon_duration_s": 12.5,
            "first_logon": False,
            "source": "unifiedlog-loginwindow",
        },
    ]  # the 13:02 screen unlock had no new Dock; the 18:05 sign-in is still in progress
    predicate = calls[0][calls[0].index("--predicate") + 1]
    assert "loginwindow:success" in predicate and "com.apple.dock" in predicate
    _valid(harvest.events)
    cursor = json.loads(harvest.cursor or "{}")
    assert cursor["start"] == "2024-03-12T17:05:00+00:00"  # read again from the pending start
    # the next read sees the same records again (log show --start is inclusive) plus the end
    end = json.loads(text.splitlines()[2])
    end["timestamp"], end["traceID"] = "2024-03-12 18:05:09.000000+0100", 99
    calls2, run2 = _runner(text + json.dumps(end) + "\n")
    second = darwin.logons_from(harvest.cursor, SINCE, run=run2)
    assert [e["logon_duration_s"] for e in second.events] == [9.0]
    assert calls2[0][calls2[0].index("--start") + 1] == "2024-03-12 17:05:00+0000"
    _, run3 = _runner(text + json.dumps(end) + "\n")
    assert darwin.logons_from(second.cursor, SINCE, run=run3).events == []


def test_logons_off_macos_without_runner_report_nothing() -> None:
    if sys.platform == "darwin":  # pragma: no cover - macOS builds
        pytest.skip("runs log show on macOS")
    harvest = darwin.read_logons(None, SINCE)
    assert harvest.events == [] and harvest.degraded is not None


def test_boot_phases_from_sysctl_and_loginwindow() -> None:
    boottime = "{ sec = 1710230230, usec = 500000 } Tue Mar 12 08:57:10 2024\n"
    calls, run = _runner(boottime, (FIXTURES / "login-window.ndjson").read_text())
    phases = darwin.boot_phases_from(run)
    assert phases == {
        "boot_duration_s": 47.920,
        "boot_kind": "cold",
        "source": "unifiedlog-loginwindow",
    }
    assert calls[0] == ["/usr/sbin/sysctl", "-n", "kern.boottime"]
    assert calls[1][calls[1].index("--start") + 1] == "2024-03-12 07:57:10+0000"
    _, nothing = _runner(boottime, "")
    assert darwin.boot_phases_from(nothing) is None
    _, broken = _runner("")
    assert darwin.boot_phases_from(broken) is None


def test_parse_report_time_variants() -> None:
    assert reports.parse_report_time("2021-03-08 13:57:06.00 -0800") == datetime(
        2021, 3, 8, 21, 57, 6, tzinfo=UTC
    )
    assert reports.parse_report_time("2024-01-15 10:30:00.000000-0800") == datetime(
        2024, 1, 15, 18, 30, tzinfo=UTC
    )
    assert reports.parse_report_time("2024-01-15 10:30:00") is None
    assert reports.parse_report_time("soon") is None


def test_live_state_and_interfaces_off_macos() -> None:
    assert darwin.hung_apps() == []
    assert darwin.foreground_pid() is None
    assert darwin.read_pressure_totals() is None
    if sys.platform != "darwin":
        assert darwin.boot_id() is None
        assert darwin.boot_phases() is None


def test_event_ids_are_uuids(reports_dir: Path) -> None:
    harvest = darwin.app_crashes_from(None, SINCE, dirs=[reports_dir])
    assert all(isinstance(e["event_id"], uuid.UUID) for e in harvest.events)
