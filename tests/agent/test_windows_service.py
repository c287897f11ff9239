"""The Windows service entry point: the state machine, and the dispatcher driven as the SCM
would drive it through a fake advapi32 (the real ctypes callbacks and structures; the
agent's real run loop on a temporary state directory, its collector a closed port)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli import SERVICE_ELSEWHERE, service_loop
from agent.platform.windows_service import (
    ERROR_CALL_NOT_IMPLEMENTED,
    ERROR_SERVICE_SPECIFIC_ERROR,
    NO_ERROR,
    RUNNING_ACCEPTS,
    SERVICE_CONTROL_INTERROGATE,
    SERVICE_CONTROL_PRESHUTDOWN,
    SERVICE_CONTROL_SHUTDOWN,
    SERVICE_CONTROL_STOP,
    SERVICE_NAME,
    SERVICE_RUNNING,
    SERVICE_START_PENDING,
    SERVICE_STOP_PENDING,
    SERVICE_STOPPED,
    SERVICE_WIN32_OWN_PROCESS,
    START_WAIT_HINT_MS,
    STOP_WAIT_HINT_MS,
    ServiceError,
    ServiceHost,
    ServiceStateMachine,
    ServiceStatus,
    run_service,
)
from agent.spool import read_stats
from agent.state import Identity, save_identity
from tests.agent.test_enroll import closed_port

REPO = Path(__file__).resolve().parents[2]
SERVICE_CONTROL_PAUSE = 0x2


# --- the state machine -------------------------------------------------------------------


def test_start_reports_start_pending_then_running() -> None:
    machine = ServiceStateMachine()
    assert machine.starting() == ServiceStatus(
        SERVICE_START_PENDING, checkpoint=1, wait_hint_ms=START_WAIT_HINT_MS
    )
    assert machine.running() == ServiceStatus(SERVICE_RUNNING, controls_accepted=RUNNING_ACCEPTS)
    assert machine.current.state == SERVICE_RUNNING


@pytest.mark.parametrize(
    "control", [SERVICE_CONTROL_STOP, SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_PRESHUTDOWN]
)
def test_stop_controls_report_stop_pending_with_rising_checkpoints(control: int) -> None:
    machine = ServiceStateMachine()
    machine.starting()
    machine.running()
    outcome = machine.control(control)
    pending = ServiceStatus(SERVICE_STOP_PENDING, checkpoint=1, wait_hint_ms=STOP_WAIT_HINT_MS)
    assert (outcome.result, outcome.report, outcome.stop) == (NO_ERROR, pending, True)
    assert machine.still_stopping() == ServiceStatus(
        SERVICE_STOP_PENDING, checkpoint=2, wait_hint_ms=STOP_WAIT_HINT_MS
    )
    assert machine.still_stopping() == ServiceStatus(
        SERVICE_STOP_PENDING, checkpoint=3, wait_hint_ms=STOP_WAIT_HINT_MS
    )
    # a second stop (e.g. SHUTDOWN after STOP) reports the same status and stops nothing new
    again = machine.control(SERVICE_CONTROL_STOP)
    assert (again.result, again.report, again.stop) == (NO_ERROR, machine.current, False)
    assert machine.stopped(0) == ServiceStatus(SERVICE_STOPPED)
    assert machine.still_stopping() is None


def test_stopped_with_an_error_is_a_service_specific_error() -> None:
    machine = ServiceStateMachine()
    assert machine.stopped(3) == ServiceStatus(
        SERVICE_STOPPED, win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR, service_specific_exit_code=3
    )


def test_interrogate_reports_the_current_status() -> None:
    machine = ServiceStateMachine()
    machine.starting()
    running = machine.running()
    outcome = machine.control(SERVICE_CONTROL_INTERROGATE)
    assert (outcome.result, outcome.report, outcome.stop) == (NO_ERROR, running, False)
    assert machine.current == running


def test_an_unknown_control_is_not_implemented_and_changes_nothing() -> None:
    machine = ServiceStateMachine()
    machine.starting()
    running = machine.running()
    outcome = machine.control(SERVICE_CONTROL_PAUSE)
    assert (outcome.result, outcome.report, outcome.stop) == (
        ERROR_CALL_NOT_IMPLEMENTED,
        None,
        False,
    )
    assert machine.current == running


# --- the dispatcher, through a fake advapi32 ------------------------------------------------


class FakeAdvapi32:  # its methods carry advapi32's names
    """advapi32's three functions as the SCM behaves: the dispatcher runs the ServiceMain in
    a thread of its own and returns when it has; the handler is kept for :meth:`send`."""

    def __init__(self, *, connect: bool = True) -> None:
        self.connect = connect
        self.calls: list[tuple[Any, ...]] = []
        self.reports: list[tuple[float, ServiceStatus]] = []
        self.handler: Callable[..., int] | None = None
        self._changed = threading.Condition()

    def StartServiceCtrlDispatcherW(self, table: Any) -> int:
        self.calls.append(("StartServiceCtrlDispatcherW", table[0].lpServiceName))
        assert table[1].lpServiceName is None  # the table ends with a null entry
        if not self.connect:
            return 0
        main = threading.Thread(target=table[0].lpServiceProc, args=(1, None), name="svc-main")
        main.start()
        main.join(timeout=120)
        assert not main.is_alive(), "the ServiceMain did not return"
        return 1

    def RegisterServiceCtrlHandlerExW(
        self, name: str, handler: Callable[..., int], context: Any
    ) -> int:
        self.calls.append(("RegisterServiceCtrlHandlerExW", name, context))
        self.handler = handler
        return 0x5C5C

    def SetServiceStatus(self, handle: int, status: Any) -> int:
        s = status.contents
        assert handle == 0x5C5C and s.dwServiceType == SERVICE_WIN32_OWN_PROCESS
        report = ServiceStatus(
            s.dwCurrentState,
            s.dwControlsAccepted,
            s.dwWin32ExitCode,
            s.dwServiceSpecificExitCode,
            s.dwCheckPoint,
            s.dwWaitHint,
        )
        with self._changed:
            self.reports.append((time.monotonic(), report))
            self._changed.notify_all()
        return 1

    def send(self, control: int) -> int:
        """Send a control through the registered handler, as the SCM does."""
        assert self.handler is not None, "no handler registered"
        return int(self.handler(control, 0, None, None))

    def wait_for(self, state: int, timeout: float = 30.0) -> tuple[float, ServiceStatus]:
        """The first report of ``state`` (and when it came), waiting for it if need be."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(r.state == state for _, r in self.reports), timeout
            )
            assert found, f"no status {state} reported: {self.states()}"
            return next((t, r) for t, r in self.reports if r.state == state)

    def states(self) -> list[int]:
        return [r.state for _, r in self.reports]


class Dispatch:
    """``ServiceHost.dispatch`` in the process's 'main' thread, its result kept."""

    def __init__(self, host: ServiceHost) -> None:
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(host,), name="dispatcher", daemon=True
        )
        self.thread.start()

    def _run(self, host: ServiceHost) -> None:
        try:
            self.result = host.dispatch()
        except BaseException as exc:
            self.result = exc

    def join(self, timeout: float = 60.0) -> int | BaseException | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "dispatch did not return"
        return self.result


@pytest.fixture
def agent_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An enrolled agent's state directory; its collector is a closed port."""
    for name in list(os.environ):
        if name.startswith("DEXSCOPE_"):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    url = f"http://127.0.0.1:{closed_port()}"
    save_identity(state, Identity(str(uuid.uuid4()), "dt_secret", url, "2026-12-01"))
    yield state


def _spooled(state: Path) -> int:
    db = state / "spool.db"
    try:
        return read_stats(db).events if db.exists() else 0
    except sqlite3.Error:  # created, its tables not yet
        return 0


def test_the_service_runs_the_agent_loop_and_stops_it_cleanly(agent_state: Path) -> None:
    advapi32 = FakeAdvapi32()
    host = ServiceHost(service_loop({"state_dir": str(agent_state)}, None), advapi32)
    dispatch = Dispatch(host)

    advapi32.wait_for(SERVICE_RUNNING)
    deadline = time.monotonic() + 60
    while _spooled(agent_state) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if _spooled(agent_state) == 0:
        host.stop.set()  # let the loop end before failing
        pytest.fail("the agent's loop spooled no sampling round")
    assert advapi32.send(SERVICE_CONTROL_INTERROGATE) == NO_ERROR
    assert advapi32.send(SERVICE_CONTROL_PAUSE) == ERROR_CALL_NOT_IMPLEMENTED

    sent = time.monotonic()
    assert advapi32.send(SERVICE_CONTROL_STOP) == NO_ERROR
    stopped_at, stopped = advapi32.wait_for(SERVICE_STOPPED, timeout=STOP_WAIT_HINT_MS / 1000)
    assert stopped_at - sent < STOP_WAIT_HINT_MS / 1000
    assert stopped == ServiceStatus(SERVICE_STOPPED)
    assert dispatch.join() == 0
    assert not [t for t in threading.enumerate() if t.name in ("uploader", "service-stop")]

    assert advapi32.calls == [
        ("StartServiceCtrlDispatcherW", SERVICE_NAME),
        ("RegisterServiceCtrlHandlerExW", SERVICE_NAME, None),
    ]
    states = advapi32.states()
    assert states[:3] == [SERVICE_START_PENDING, SERVICE_RUNNING, SERVICE_RUNNING]  # interrogate
    assert states[3] == SERVICE_STOP_PENDING and states[-1] == SERVICE_STOPPED
    assert set(states[3:-1]) == {SERVICE_STOP_PENDING}
    # the spool was closed: its WAL checkpointed, a fresh read sees every event
    assert not (agent_state / "spool.db-wal").exists()
    assert read_stats(agent_state / "spool.db").events > 0


def test_a_failing_agent_stops_with_a_service_specific_error() -> None:
    def loop(_stop: threading.Event) -> int:
        raise RuntimeError("disk on fire")

    advapi32 = FakeAdvapi32()
    assert run_service(loop, advapi32) == 1
    _, stopped = advapi32.wait_for(SERVICE_STOPPED)
    assert stopped == ServiceStatus(
        SERVICE_STOPPED, win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR, service_specific_exit_code=1
    )
    assert advapi32.states() == [SERVICE_START_PENDING, SERVICE_RUNNING, SERVICE_STOPPED]


def test_an_agent_that_cannot_start_reports_run_s_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("DEXSCOPE_"):
            monkeypatch.delenv(name)
    advapi32 = FakeAdvapi32()  # not enrolled and no server: a configuration error, code 2
    assert run_service(service_loop({"state_dir": str(tmp_path / "s")}, None), advapi32) == 2
    _, stopped = advapi32.wait_for(SERVICE_STOPPED)
    assert (stopped.win32_exit_code, stopped.service_specific_exit_code) == (
        ERROR_SERVICE_SPECIFIC_ERROR,
        2,
    )


def test_a_slow_stop_keeps_raising_the_checkpoint() -> None:
    release = threading.Event()

    def loop(stop: threading.Event) -> int:
        stop.wait(30)
        release.wait(30)  # winding down takes a while
        return 0

    advapi32 = FakeAdvapi32()
    dispatch = Dispatch(ServiceHost(loop, advapi32, tick_s=0.05))
    advapi32.wait_for(SERVICE_RUNNING)
    assert advapi32.send(SERVICE_CONTROL_SHUTDOWN) == NO_ERROR
    deadline = time.monotonic() + 10
    while advapi32.states().count(SERVICE_STOP_PENDING) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    release.set()
    assert dispatch.join() == 0
    pending = [r for _, r in advapi32.reports if r.state == SERVICE_STOP_PENDING]
    assert len(pending) >= 4
    assert [r.checkpoint for r in pending] == list(range(1, len(pending) + 1))
    assert all(r.wait_hint_ms == STOP_WAIT_HINT_MS and r.controls_accepted == 0 for r in pending)
    assert advapi32.states()[-1] == SERVICE_STOPPED  # nothing reported after STOPPED
    time.sleep(0.15)
    assert advapi32.states()[-1] == SERVICE_STOPPED


def test_not_started_by_the_service_manager_is_an_error() -> None:
    advapi32 = FakeAdvapi32(connect=False)
    with pytest.raises(ServiceError, match="StartServiceCtrlDispatcherW failed"):
        run_service(lambda _stop: 0, advapi32)
    assert advapi32.handler is None and advapi32.reports == []


@pytest.mark.skipif(sys.platform == "win32", reason="--service is the Windows entry point")
def test_run_service_elsewhere_is_a_one_line_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXSCOPE_")}
    result = subprocess.run(
        [sys.executable, "-m", "dexscope", "agent", "run", "--service"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {SERVICE_ELSEWHERE}\n"
    assert SERVICE_ELSEWHERE == (
        "--service is for the Windows service manager; use systemd/launchd units on Linux/macOS"
    )


def test_the_msi_service_command_line_runs_the_service_entry_point() -> None:
    import shlex
    import xml.etree.ElementTree as ET

    from dexscope.cli import build_parser

    wxs = ET.parse(REPO / "installers" / "windows" / "dexscope-agent.wxs")
    (service,) = wxs.iter("{http://schemas.microsoft.com/wix/2006/wi}ServiceInstall")
    assert service.get("Name") == SERVICE_NAME
    args = build_parser().parse_args(shlex.split(service.get("Arguments", "")))
    assert args.service and not args.once
    assert str(args.state_dir) == "[CommonAppDataFolder]DexScope\\state"


def test_a_service_logs_to_a_rotating_file_in_its_state_dir(tmp_path: Path) -> None:
    """A service has no console: its log goes to ``<state_dir>/logs/agent.log``."""
    import logging
    from logging.handlers import RotatingFileHandler

    from agent.cli import LOG_FORMAT, service_log_handler

    handler = service_log_handler(tmp_path / "state")
    try:
        assert isinstance(handler, RotatingFileHandler)
        assert handler.maxBytes == 1024 * 1024 and handler.backupCount == 3
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger = logging.getLogger("dexscope.agent.test-service-log")
        logger.addHandler(handler)
        logger.warning("collector unreachable, retrying in 30 s")
        logger.removeHandler(handler)
    finally:
        handler.close()
    text = (tmp_path / "state" / "logs" / "agent.log").read_text()
    assert "WARNING dexscope.agent.test-service-log: collector unreachable" in text
