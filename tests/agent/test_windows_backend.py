"""The Windows backend on Linux: its parsers on recorded ``wevtutil`` XML and on real .evtx
records, its readers with a fake ``wevtutil``, its cursors, and wire validity of every event."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from agent import jsonutil
from agent.platform import windows
from agent.platform import windows_events as we
from agent.platform.common import Harvest, stable_event_id
from collector.ingest.schemas import EVENT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "windows"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "windows"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PRIVATE = ("alice", "ALICE", "Users", "S-1-5-21", "LAPTOP", "corp.example", "Minidump")

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"real .evtx fixtures not found at {SHARED} (a clone without ../shared beside it)",
)


def fixture(*names: str) -> str:
    """The named fixture files as one ``wevtutil qe ... /e:Events`` output."""
    body = "".join((FIXTURES / f"{name}.xml").read_text(encoding="utf-8") for name in names)
    return f"<Events>\n{body}</Events>\n"


class FakeWevtutil:
    """Answers queries per log with recorded XML, like ``wevtutil qe`` would (it ignores the
    XPath: the readers filter by record id and time themselves, too); records the calls."""

    def __init__(self, logs: dict[str, str]) -> None:
        self.logs = logs
        self.calls: list[tuple[str, str, int, bool]] = []

    def __call__(self, log_name: str, query: str, count: int, newest_first: bool) -> str:
        self.calls.append((log_name, query, count, newest_first))
        if log_name not in self.logs:
            raise windows.WevtutilError(f"wevtutil {log_name}: exit 15007: channel not found")
        if not newest_first:
            return self.logs[log_name]
        events, _ = we.parse_events(self.logs[log_name])
        newest = sorted(events, key=lambda e: e.record_id)[-count:] if events else []
        chunks = re.findall(r"<Event[\s>].*?</Event>", self.logs[log_name], re.DOTALL)
        by_id = {we.parse_event(c).record_id: c for c in chunks}
        return "<Events>" + "".join(by_id[e.record_id] for e in reversed(newest)) + "</Events>"


def wire_valid(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the collector sees it (raises if the wire schema rejects it)."""
    payload = json.loads(jsonutil.dumps(event))
    EVENT.validate_python(payload)
    text = json.dumps(payload)
    for word in PRIVATE:
        assert word not in text, f"{word!r} leaked into {text}"
    assert isinstance(payload, dict)
    return payload


def strip_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("event_id", "ts")} for e in events]


# --- parsers on hand-written fixtures -------------------------------------------------


def test_app_crashes_from_1000_and_wer_without_double_counting() -> None:
    run = FakeWevtutil({"Application": fixture("application-error-1000", "wer-1001-appcrash")})
    harvest = windows.harvest_app_crashes(None, EPOCH, run)
    assert strip_ids(harvest.events) == [
        {
            "type": "app_crash",
            "app_name": "OUTLOOK.EXE",
            "app_version": "16.0.17328.20162",
            "faulting_module": "mso20win32client.dll",
            "exception_code": "0xc0000005",
            "source": "wevtutil:Application:Application Error:1000",
        },
        {  # older builds: unnamed <Data>, app under the user's profile (path never sent)
            "type": "app_crash",
            "app_name": "invoicer.exe",
            "app_version": "3.2.1.0",
            "faulting_module": "ucrtbase.dll",
            "exception_code": "0xc0000409",
            "source": "wevtutil:Application:Application Error:1000",
        },
        {  # WER APPCRASH with no Application Error 1000 beside it
            "type": "app_crash",
            "app_name": "Teams.exe",
            "app_version": "24033.811.2738.2546",
            "faulting_module": "KERNELBASE.dll",
            "exception_code": "0xe0434352",
            "source": "wevtutil:Application:Windows Error Reporting:1001",
        },
    ]
    first = harvest.events[0]
    assert first["event_id"] == stable_event_id("wevtutil:Application", "48211")
    assert first["ts"] == datetime(2024, 3, 14, 9, 15, 2, 481726, tzinfo=UTC)
    assert harvest.source == "wevtutil:Application"
    assert harvest.degraded is None
    for event in harvest.events:
        wire_valid(event)


def test_wer_appcrash_after_a_cursor_boundary_is_not_counted_again() -> None:
    first_half = FakeWevtutil({"Application": fixture("application-error-1000")})
    first = windows.harvest_app_crashes(None, EPOCH, first_half)
    assert [e["app_name"] for e in first.events] == ["OUTLOOK.EXE", "invoicer.exe"]
    # The WER record of the first crash (4 s later) arrives in the next read only.
    second_half = FakeWevtutil({"Application": fixture("wer-1001-appcrash")})
    later = windows.harvest_app_crashes(first.cursor, EPOCH, second_half)
    assert [e["app_name"] for e in later.events] == ["Teams.exe"]


def test_app_hang_fields() -> None:
    run = FakeWevtutil({"Application": fixture("application-hang-1002")})
    harvest = windows.harvest_app_hangs(None, EPOCH, run)
    assert strip_ids(harvest.events) == [
        {
            "type": "app_hang",
            "app_name": "EXCEL.EXE",
            "app_version": "16.0.17328.20162",
            "source": "wevtutil:Application:Application Hang:1002",
        }
    ]
    assert we.HUNG_WINDOW_THRESHOLD_S == 5.0
    wire_valid(harvest.events[0])


def test_system_crashes_one_event_per_crash() -> None:
    run = FakeWevtutil({"System": fixture("kernel-power-41", "eventlog-6008", "bugcheck-1001")})
    harvest = windows.harvest_system_crashes(None, EPOCH, run)
    assert strip_ids(harvest.events) == [
        {  # Kernel-Power 41 (code 0) and EventLog 6008 of the same start-up: one crash
            "type": "system_crash",
            "crash_kind": "unexpected_shutdown",
            "detail": "rebooted without cleanly shutting down (after the power button was held)",
            "source": "wevtutil:System:Microsoft-Windows-Kernel-Power:41",
        },
        {  # BugCheck 1001 and Kernel-Power 41 (BugcheckCode 159 = 0x9f): one bugcheck
            "type": "system_crash",
            "crash_kind": "bugcheck",
            "bugcheck_code": "0x0000009f",
            "detail": "bugcheck 0x0000009f (0x0000000000000003, 0xffffb30f2a1c8060, "
            "0xfffff80263a87750, 0xffffb30f2d0e1a20)",
            "source": "wevtutil:System:Microsoft-Windows-WER-SystemErrorReporting:1001",
        },
    ]
    for event in harvest.events:
        wire_valid(event)


def test_single_records_of_each_crash_source() -> None:
    events, skipped = we.parse_events(fixture("eventlog-6008", "kernel-power-41"))
    assert skipped == 0
    unexpected = we.system_crash_from(events[0])
    assert unexpected is not None
    assert unexpected["crash_kind"] == "unexpected_shutdown"
    assert unexpected["detail"] == "previous shutdown at 8:41:03 AM 3/9/2024 was unexpected"
    bugcheck = we.system_crash_from(events[2])
    assert bugcheck is not None
    assert (bugcheck["crash_kind"], bugcheck["bugcheck_code"]) == ("bugcheck", "0x0000009f")
    assert "during a sleep transition" in bugcheck["detail"]


def test_software_changes_msi_install_removal_and_upgrade() -> None:
    run = FakeWevtutil(
        {
            "System": "<Events></Events>",
            "Application": fixture("msiinstaller-1033", "msiinstaller-1034"),
        }
    )
    harvest = windows.harvest_software_changes(None, EPOCH, run)
    assert sorted(strip_ids(harvest.events), key=lambda e: e["name"]) == [
        {
            "type": "software_change",
            "change": "install",
            "name": "7-Zip 23.01 (x64 edition)",
            "version_to": "23.01.00.0",
            "publisher": "Igor Pavlov",
            "source": "wevtutil:Application:MsiInstaller:1033",
        },
        {
            "type": "software_change",
            "change": "removal",
            "name": "Adobe Acrobat Reader DC",
            "version_from": "23.008.20470",
            "publisher": "Adobe Systems Incorporated",
            "source": "wevtutil:Application:MsiInstaller:1034",
        },
        {  # removal of 5.3.9.0 + installation of 5.4.2.0 29 s later: one update
            "type": "software_change",
            "change": "update",
            "name": "Contoso VPN Client",
            "version_from": "5.3.9.0",
            "version_to": "5.4.2.0",
            "publisher": "Contoso Ltd.",
            "source": "wevtutil:Application:MsiInstaller:1033",
        },
    ]  # "Broken Tool" (status 1603, a failed installation) is no change
    update = next(e for e in harvest.events if e["change"] == "update")
    assert update["event_id"] == stable_event_id("wevtutil:Application", "48117")
    for event in harvest.events:
        wire_valid(event)


def test_boot_phases_of_the_current_boot() -> None:
    run = FakeWevtutil(
        {
            windows.DIAGNOSTICS_LOG: fixture("diagnostics-performance-100"),
            "System": fixture("kernel-boot-27"),
        }
    )
    assert windows.boot_phases_with(run) == {
        "boot_duration_s": 61.874,
        "main_path_s": 23.412,
        "post_boot_s": 38.462,
        "boot_kind": "fast_startup",
        "source": "diagnostics-performance-100",
    }
    assert all(newest for _, _, count, newest in run.calls if count == 1)


def test_boot_phases_wait_for_this_boots_record() -> None:
    later_boot = fixture("kernel-boot-27").replace("2024-03-14T07:52", "2024-03-15T07:52")
    run = FakeWevtutil(
        {windows.DIAGNOSTICS_LOG: fixture("diagnostics-performance-100"), "System": later_boot}
    )
    assert windows.boot_phases_with(run) is None  # the 100 on record is the previous boot's
    assert windows.boot_phases_with(FakeWevtutil({})) is None  # no such log (Windows Server)


@pytest.mark.parametrize(
    ("boot_type", "kind"),
    [("0", "cold"), ("0x1", "fast_startup"), ("0x2", "resume"), ("7", "unknown")],
)
def test_boot_kind_from_kernel_boot_27(boot_type: str, kind: str) -> None:
    text = fixture("kernel-boot-27").replace(
        "<Data Name='BootType'>0x1<", f"<Data Name='BootType'>{boot_type}<"
    )
    events, _ = we.parse_events(text)
    assert we.boot_kind_from(events[0]) == kind
    assert we.boot_kind_from(None) == "unknown"


def test_logon_from_diagnostics_performance_100() -> None:
    run = FakeWevtutil({windows.DIAGNOSTICS_LOG: fixture("diagnostics-performance-100")})
    harvest = windows.harvest_logons(None, EPOCH, run)
    assert strip_ids(harvest.events) == [
        {
            "type": "logon",
            "logon_duration_s": pytest.approx(9.874 + 4.521),
            "desktop_ready_s": pytest.approx(9.874 + 4.521 + 38.462),
            "first_logon": False,
            "source": "diagnostics-performance-100",
        }
    ]
    assert "_user" not in harvest.events[0]  # event 100 names no account
    wire_valid(harvest.events[0])


# --- cursors, robustness ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("harvest", "logs"),
    [
        (
            windows.harvest_app_crashes,
            {"Application": ("application-error-1000", "wer-1001-appcrash")},
        ),
        (windows.harvest_app_hangs, {"Application": ("application-hang-1002",)}),
        (
            windows.harvest_system_crashes,
            {"System": ("kernel-power-41", "eventlog-6008", "bugcheck-1001")},
        ),
        (
            windows.harvest_software_changes,
            {"System": (), "Application": ("msiinstaller-1033", "msiinstaller-1034")},
        ),
        (windows.harvest_logons, {windows.DIAGNOSTICS_LOG: ("diagnostics-performance-100",)}),
    ],
)
def test_second_read_with_the_cursor_returns_nothing_new(
    harvest: Callable[[str | None, datetime, windows.WevtutilRunner], Harvest],
    logs: dict[str, tuple[str, ...]],
) -> None:
    run = FakeWevtutil({log: fixture(*names) for log, names in logs.items()})
    first = harvest(None, EPOCH, run)
    assert first.events and first.cursor is not None
    state = json.loads(first.cursor)
    for log_name, query in ((c[0], c[1]) for c in run.calls):
        assert "TimeCreated[@SystemTime>='2000-01-01T00:00:00.000Z']" in query, (log_name, query)
    run.calls.clear()
    second = harvest(first.cursor, EPOCH, run)
    assert second.events == []
    assert second.cursor is None  # nothing moved: keep the previous cursor
    for log_name, query, count, newest_first in run.calls:
        if isinstance(state.get(log_name), int):
            assert f"EventRecordID > {state[log_name]}" in query
        assert (count, newest_first) == (windows.MAX_RECORDS, False)


def test_cursor_maps_log_names_to_record_ids() -> None:
    run = FakeWevtutil({"Application": fixture("application-hang-1002")})
    harvest = windows.harvest_app_hangs(None, EPOCH, run)
    assert json.loads(harvest.cursor or "") == {"Application": 48220}
    assert we.build_query("EventID=1002", 48220, EPOCH) == (
        "*[System[(EventID=1002) and EventRecordID > 48220]]"
    )
    since = datetime(2024, 3, 14, 10, 5, 33, 771200, tzinfo=UTC)
    assert we.build_query("EventID=1002", None, since) == (
        "*[System[(EventID=1002) and TimeCreated[@SystemTime>='2024-03-14T10:05:33.771Z']]]"
    )
    assert we.load_cursor("not json") == {}
    assert we.load_cursor(None) == {}


def test_first_read_takes_only_records_since() -> None:
    run = FakeWevtutil({"Application": fixture("application-error-1000")})
    since = datetime(2024, 3, 14, 10, 0, tzinfo=UTC)
    harvest = windows.harvest_app_crashes(None, since, run)
    assert [e["app_name"] for e in harvest.events] == ["invoicer.exe"]


def test_malformed_records_are_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    text = fixture("malformed")
    events, skipped = we.parse_events(text)
    assert [e.record_id for e in events] == [48233, 48236]
    assert skipped == 3  # unclosed <Data>, bad time, a record cut off at the end
    run = FakeWevtutil({"Application": text})
    harvest = windows.harvest_app_hangs(None, EPOCH, run)
    assert [e["app_name"] for e in harvest.events] == ["notepad.exe", "wordpad.exe"]
    assert harvest.degraded == "Application: 3 unreadable record(s) skipped"
    assert json.loads(harvest.cursor or "") == {"Application": 48236}
    assert "unreadable event-log record" in caplog.text
    assert we.parse_events("") == ([], 0)
    with pytest.raises(ValueError):
        we.parse_event("<Event><System/></Event>")


def test_an_unclosed_record_does_not_swallow_the_next() -> None:
    good = (FIXTURES / "application-hang-1002.xml").read_text(encoding="utf-8")
    broken = good.replace("</Event>", "").replace("48220", "48219")
    events, skipped = we.parse_events(broken + good)
    assert [e.record_id for e in events] == [48220] and skipped == 1


def test_missing_log_degrades_instead_of_failing() -> None:
    harvest = windows.harvest_app_hangs(None, EPOCH, FakeWevtutil({}))
    assert harvest.events == [] and harvest.cursor is None
    assert harvest.degraded is not None and "channel not found" in harvest.degraded
    partial = windows.harvest_software_changes(
        None, EPOCH, FakeWevtutil({"Application": fixture("msiinstaller-1034")})
    )
    assert len(partial.events) == 2 and partial.degraded is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-14T09:15:02.4817263Z", datetime(2024, 3, 14, 9, 15, 2, 481726, tzinfo=UTC)),
        ("2018-07-06 18:45:37.179123+00:00", datetime(2018, 7, 6, 18, 45, 37, 179123, tzinfo=UTC)),
        ("2019-01-08T14:01:18.909425000Z", datetime(2019, 1, 8, 14, 1, 18, 909425, tzinfo=UTC)),
        ("2024-03-14T11:15:02+02:00", datetime(2024, 3, 14, 9, 15, 2, tzinfo=UTC)),
        ("2024-03-14T09:15:02", datetime(2024, 3, 14, 9, 15, 2, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert we.parse_time(text) == expected


# --- the command runner and the Windows-only functions, on Linux ---------------------------


def test_run_wevtutil_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        seen.append(args)
        assert kwargs["timeout"] == 30.0 and kwargs["check"] is False
        out = fixture("application-hang-1002").encode("utf-16")
        return subprocess.CompletedProcess(args, 0, out, b"")

    monkeypatch.setattr(shutil, "which", lambda name: r"C:\Windows\System32\wevtutil.exe")
    monkeypatch.setattr(subprocess, "run", fake_run)
    text = windows.run_wevtutil("Application", "*[System[EventID=1002]]", 1, newest_first=True)
    assert "EXCEL.EXE" in text
    assert seen == [
        [
            r"C:\Windows\System32\wevtutil.exe",
            "qe",
            "Application",
            "/q:*[System[EventID=1002]]",
            "/f:xml",
            "/e:Events",
            "/c:1",
            "/rd:true",
        ]
    ]


def test_run_wevtutil_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(windows.WevtutilError, match="not found"):
        windows.run_wevtutil("Application", "*")
    monkeypatch.setattr(shutil, "which", lambda name: "wevtutil")
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda args, **kw: subprocess.CompletedProcess(
            args,
            15007,
            b"",
            b"Failed to read events. The specified channel could not be found.\r\n",
        ),
    )
    with pytest.raises(windows.WevtutilError, match="exit 15007: Failed to read events"):
        windows.run_wevtutil("Nope", "*")

    def timeout(args: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        raise subprocess.TimeoutExpired(args, 30)

    monkeypatch.setattr(subprocess, "run", timeout)
    with pytest.raises(windows.WevtutilError):
        windows.run_wevtutil("System", "*")


def test_decode_output() -> None:
    assert windows.decode_output("<Events/>".encode("utf-16")) == "<Events/>"
    assert windows.decode_output("<Events/>".encode("utf-16-le")) == "<Events/>"
    assert windows.decode_output(b"\xef\xbb\xbf<Events/>") == "<Events/>"
    assert windows.decode_output(b"<a>\xff</a>") == "<a>\ufffd</a>"


def test_off_windows_the_backend_reports_nothing_invented() -> None:
    assert windows.boot_id() is None
    assert windows.read_pressure_totals() is None
    assert windows.hung_apps() == []
    assert windows.foreground_pid() is None
    if shutil.which("wevtutil") is None:
        assert windows.boot_phases() is None
        harvest = windows.read_app_crashes(None, EPOCH)
        assert harvest.events == [] and harvest.degraded is not None


def test_backend_exports_every_backend_function() -> None:
    from agent.platform import BACKEND_FUNCTIONS

    for name in BACKEND_FUNCTIONS:
        assert name in windows.__all__ and callable(getattr(windows, name))


# --- real event logs (python-evtx) -------------------------------------------------------


def evtx_xml(name: str) -> str:
    """Every record of a real .evtx file as ``wevtutil /e:Events``-shaped XML."""
    evtx = pytest.importorskip("Evtx.Evtx")
    with evtx.Evtx(str(SHARED / name)) as log:
        body = "".join(record.xml() for record in log.records())
    return f"<Events>{body}</Events>"


@needs_shared
def test_real_system_log_with_updates() -> None:
    text = evtx_xml("system-with-updates.evtx")
    run = FakeWevtutil({"System": text, "Application": "<Events></Events>"})
    harvest = windows.harvest_software_changes(None, EPOCH, run)
    assert harvest.degraded is None
    for event in harvest.events:
        wire_valid(event)
    patches = [e for e in harvest.events if e["change"] == "os_patch"]
    by_kb: dict[str, list[dict[str, Any]]] = {}
    for patch in patches:
        by_kb.setdefault(patch.get("kb", ""), []).append(patch)
    cumulative = by_kb["KB4338819"][0]
    assert cumulative["name"] == (
        "2018-07 Cumulative Update for Windows 10 Version 1803 for x64-based Systems (KB4338819)"
    )
    assert cumulative["ts"] == datetime(2018, 7, 12, 0, 44, 15, 269373, tzinfo=UTC)
    assert cumulative["event_id"] == stable_event_id("wevtutil:System", "411")
    assert by_kb["KB890830"][0]["name"] == (
        "Windows Malicious Software Removal Tool x64 - July 2018 (KB890830)"
    )
    assert {"KB4287903", "KB4338832"} <= set(by_kb)
    definitions = by_kb["KB2267602"]
    assert len(definitions) == 10
    assert definitions[0]["version_to"] == "1.271.638.0"
    assert by_kb[""][0]["name"] == "Feature update to Windows 10, version 1803"
    store = sorted(e["name"] for e in harvest.events if e["change"] == "update")
    assert "MICROSOFT.WINDOWSCALCULATOR" in store and len(store) == 8
    assert len(patches) == 23 - 8
    drivers = [e for e in harvest.events if e["change"] == "driver"]
    assert len(drivers) == 3
    assert {
        "name": "Red Hat VirtIO Ethernet Adapter",
        "version_to": "100.76.104.14900",
        "publisher": "Red Hat, Inc.",
    }.items() <= drivers[0].items()
    # A second read with the cursor: nothing new.
    assert windows.harvest_software_changes(harvest.cursor, EPOCH, run).events == []


@needs_shared
@pytest.mark.parametrize("name", ["system.evtx", "system-with-updates.evtx"])
def test_real_system_logs_boots_and_crashes(name: str) -> None:
    text = evtx_xml(name)
    events, skipped = we.parse_events(text)
    assert skipped == 0 and len(events) > 300
    boots = [
        e for e in events if e.provider == "Microsoft-Windows-Kernel-Boot" and e.event_id == 27
    ]
    assert boots and all(we.boot_kind_from(e) == "cold" for e in boots)
    crashes = windows.harvest_system_crashes(None, EPOCH, FakeWevtutil({"System": text}))
    # These machines always shut down cleanly (6006 before every 6005): no crash invented.
    assert crashes.events == [] and crashes.degraded is None


@needs_shared
def test_real_application_log_without_checksum_parses() -> None:
    text = evtx_xml("Application_no_crc32.evtx")
    events, skipped = we.parse_events(text)
    assert len(events) == 17 and skipped == 0
    winlogon = next(e for e in events if e.provider == "Microsoft-Windows-Winlogon")
    assert (winlogon.event_id, winlogon.record_id) == (6000, 428)
    run = FakeWevtutil({"Application": text})
    for harvest in (
        windows.harvest_app_crashes(None, EPOCH, run),
        windows.harvest_app_hangs(None, EPOCH, run),
    ):
        assert harvest.events == [] and harvest.degraded is None


def test_event_ids_are_uuids_and_stable() -> None:
    text = fixture("application-hang-1002")
    one = windows.harvest_app_hangs(None, EPOCH, FakeWevtutil({"Application": text}))
    two = windows.harvest_app_hangs(
        None, EPOCH - timedelta(days=1), FakeWevtutil({"Application": text})
    )
    assert isinstance(one.events[0]["event_id"], UUID)
    assert one.events[0]["event_id"] == two.events[0]["event_id"]


# -- the Uninstall keys: installers that log nothing -------------------------------------

NOTEPADPP = {"name": "Notepad++ (64-bit x64)", "version": "8.6.2", "publisher": "Notepad++ Team"}
ZOOM = {"name": "Zoom Workplace (64-bit)", "version": "6.0.11", "publisher": "Zoom", "msi": "0"}
OFFICE_MSI = {"name": "Microsoft Office LTSC", "version": "16.0.1", "publisher": "MS", "msi": "1"}


def test_uninstall_key_snapshots_give_installs_updates_and_removals() -> None:
    seen = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    first = {"Microsoft\\Notepad++": NOTEPADPP, "Microsoft\\{OFFICE}": OFFICE_MSI}
    assert we.uninstall_changes(None, first, seen) == []  # the first snapshot is the baseline
    second = {
        "Microsoft\\Notepad++": {**NOTEPADPP, "version": "8.6.4"},
        "Microsoft\\ZoomUMX": ZOOM,
        "Microsoft\\{OFFICE}": {**OFFICE_MSI, "version": "16.0.2"},  # MSI: its own events
    }
    events = we.uninstall_changes(first, second, seen)
    assert strip_ids(events) == [
        {
            "type": "software_change",
            "change": "install",
            "name": "Zoom Workplace (64-bit)",
            "version_to": "6.0.11",
            "publisher": "Zoom",
            "source": "registry:Uninstall",
        },
        {
            "type": "software_change",
            "change": "update",
            "name": "Notepad++ (64-bit x64)",
            "version_from": "8.6.2",
            "version_to": "8.6.4",
            "publisher": "Notepad++ Team",
            "source": "registry:Uninstall",
        },
    ]
    for event in events:
        wire_valid(event)
    removed = we.uninstall_changes(second, {"Microsoft\\ZoomUMX": ZOOM}, seen)
    assert [(e["change"], e["name"], e.get("version_from")) for e in removed] == [
        ("removal", "Notepad++ (64-bit x64)", "8.6.4")
    ]
    # the same change seen twice (a cursor lost) has the same id: stored once
    again = we.uninstall_changes(first, second, seen + timedelta(minutes=5))
    assert [e["event_id"] for e in again] == [e["event_id"] for e in events]


def test_software_harvest_keeps_the_registry_snapshot_in_its_cursor() -> None:
    run = FakeWevtutil({"System": "<Events></Events>", "Application": "<Events></Events>"})
    snapshots = [{"Microsoft\\Notepad++": NOTEPADPP}, {"Microsoft\\Notepad++": NOTEPADPP},
                 {"Microsoft\\Notepad++": NOTEPADPP, "Microsoft\\ZoomUMX": ZOOM}]  # fmt: skip

    def registry() -> dict[str, dict[str, str]]:
        return snapshots.pop(0)

    first = windows.harvest_software_changes(None, EPOCH, run, registry)
    assert first.events == [] and first.cursor is not None  # the baseline, kept
    second = windows.harvest_software_changes(first.cursor, EPOCH, run, registry)
    assert second.events == [] and second.cursor is None  # nothing changed
    third = windows.harvest_software_changes(first.cursor, EPOCH, run, registry)
    assert [(e["change"], e["name"]) for e in third.events] == [
        ("install", "Zoom Workplace (64-bit)")
    ]
    assert third.source == "wevtutil:System+Application+registry"
