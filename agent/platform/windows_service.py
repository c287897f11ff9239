"""The Windows service entry point of ``dexscope agent run --service`` (ctypes, advapi32).

Imported only on Windows (by :mod:`agent.cli` when ``--service`` is given), yet importable
anywhere: standard library only, and advapi32 is loaded inside :func:`load_advapi32`, behind
a ``sys.platform`` check. No pywin32.

The protocol with the Service Control Manager (SCM):

1. :meth:`ServiceHost.dispatch` calls ``StartServiceCtrlDispatcherW`` (the SCM waits 30 s
   for it), which blocks until the service has reported ``SERVICE_STOPPED``; it fails with
   error 1063 when the process was not started by the SCM (:class:`ServiceError`).
2. The SCM calls the ServiceMain (:meth:`ServiceHost.service_main`) in a thread of its own:
   it registers the control handler (``RegisterServiceCtrlHandlerExW``), reports
   ``SERVICE_START_PENDING`` then ``SERVICE_RUNNING`` and runs the agent's loop, given a
   stop event, in that thread.
3. ``SERVICE_CONTROL_STOP``, ``SHUTDOWN`` and ``PRESHUTDOWN`` report ``SERVICE_STOP_PENDING``
   (wait hint :data:`STOP_WAIT_HINT_MS`, the checkpoint raised every
   :data:`STOP_TICK_S` while the loop winds down) and set the stop event: the same path as
   SIGTERM/SIGINT in :func:`agent.main.run_agent` (the round in progress ends, the uploader
   thread is joined, the spool closed). ``INTERROGATE`` reports the current status again;
   any other control returns ``ERROR_CALL_NOT_IMPLEMENTED``.
4. When the loop returns, ``SERVICE_STOPPED``: exit code 0 as ``dwWin32ExitCode`` 0, any
   other code as ``ERROR_SERVICE_SPECIFIC_ERROR`` (1066) with the code in
   ``dwServiceSpecificExitCode`` (an exception escaping the loop is code 1).

What to report for each control is decided by :class:`ServiceStateMachine`, a pure object;
:class:`ServiceHost` does the calls, on any object with advapi32's function names (the real
DLL, or a test's fake).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Callable
from ctypes import wintypes
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "ERROR_CALL_NOT_IMPLEMENTED",
    "ERROR_FAILED_SERVICE_CONTROLLER_CONNECT",
    "ERROR_SERVICE_SPECIFIC_ERROR",
    "NO_ERROR",
    "RUNNING_ACCEPTS",
    "SERVICE_ACCEPT_PRESHUTDOWN",
    "SERVICE_ACCEPT_SHUTDOWN",
    "SERVICE_ACCEPT_STOP",
    "SERVICE_CONTROL_INTERROGATE",
    "SERVICE_CONTROL_PRESHUTDOWN",
    "SERVICE_CONTROL_SHUTDOWN",
    "SERVICE_CONTROL_STOP",
    "SERVICE_NAME",
    "SERVICE_RUNNING",
    "SERVICE_START_PENDING",
    "SERVICE_STOPPED",
    "SERVICE_STOP_PENDING",
    "SERVICE_WIN32_OWN_PROCESS",
    "START_WAIT_HINT_MS",
    "STOP_CONTROLS",
    "STOP_TICK_S",
    "STOP_WAIT_HINT_MS",
    "ControlOutcome",
    "ServiceError",
    "ServiceHost",
    "ServiceStateMachine",
    "ServiceStatus",
    "ServiceStatusStruct",
    "ServiceTableEntry",
    "load_advapi32",
    "run_service",
]

log = logging.getLogger("dexscope.agent.service")

SERVICE_NAME = "DexScopeAgent"
"""The service's name (``ServiceInstall/@Name`` in installers/windows/dexscope-agent.wxs)."""

SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4

SERVICE_ACCEPT_STOP = 0x1
SERVICE_ACCEPT_SHUTDOWN = 0x4
SERVICE_ACCEPT_PRESHUTDOWN = 0x100
RUNNING_ACCEPTS = SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PRESHUTDOWN
"""The controls accepted while running (none while starting or stopping)."""

SERVICE_CONTROL_STOP = 0x1
SERVICE_CONTROL_INTERROGATE = 0x4
SERVICE_CONTROL_SHUTDOWN = 0x5
SERVICE_CONTROL_PRESHUTDOWN = 0xF
STOP_CONTROLS = frozenset(
    {SERVICE_CONTROL_STOP, SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_PRESHUTDOWN}
)
"""The controls that stop the agent."""

NO_ERROR = 0
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
ERROR_SERVICE_SPECIFIC_ERROR = 1066

START_WAIT_HINT_MS = 10_000
"""Wait hint of ``SERVICE_START_PENDING`` (RUNNING follows at once)."""
STOP_WAIT_HINT_MS = 15_000
"""Wait hint of each ``SERVICE_STOP_PENDING`` report: the SCM waits this long for the next
checkpoint (the uploader thread is joined for up to ``upload.timeout_s + 5`` s)."""
STOP_TICK_S = 5.0
"""While stopping, the checkpoint is raised this often (well within the wait hint)."""


@dataclass(frozen=True)
class ServiceStatus:
    """One ``SERVICE_STATUS`` report (``dwServiceType`` is always own-process)."""

    state: int
    controls_accepted: int = 0
    win32_exit_code: int = NO_ERROR
    service_specific_exit_code: int = 0
    checkpoint: int = 0
    wait_hint_ms: int = 0


@dataclass(frozen=True)
class ControlOutcome:
    """What a control does: the handler's return value, the status to report (or None),
    and whether the agent must stop now."""

    result: int
    report: ServiceStatus | None = None
    stop: bool = False


class ServiceStateMachine:
    """The service's status and what to report at each step (pure: no OS calls, no clock).

    ``starting`` → ``running`` → (a stop control) ``STOP_PENDING`` with rising checkpoints
    (:meth:`still_stopping`) → ``stopped(exit_code)``.
    """

    def __init__(self) -> None:
        self.current = ServiceStatus(SERVICE_STOPPED)

    def starting(self) -> ServiceStatus:
        """``SERVICE_START_PENDING``, checkpoint 1, no control accepted yet."""
        self.current = ServiceStatus(
            SERVICE_START_PENDING, checkpoint=1, wait_hint_ms=START_WAIT_HINT_MS
        )
        return self.current

    def running(self) -> ServiceStatus:
        """``SERVICE_RUNNING``, accepting stop, shutdown and preshutdown."""
        self.current = ServiceStatus(SERVICE_RUNNING, controls_accepted=RUNNING_ACCEPTS)
        return self.current

    def control(self, code: int) -> ControlOutcome:
        """The outcome of control ``code`` sent by the SCM to the handler."""
        if code == SERVICE_CONTROL_INTERROGATE:
            return ControlOutcome(NO_ERROR, self.current)
        if code not in STOP_CONTROLS:
            return ControlOutcome(ERROR_CALL_NOT_IMPLEMENTED)
        if self.current.state in (SERVICE_STOP_PENDING, SERVICE_STOPPED):
            return ControlOutcome(NO_ERROR, self.current)  # already on its way out
        self.current = ServiceStatus(
            SERVICE_STOP_PENDING, checkpoint=1, wait_hint_ms=STOP_WAIT_HINT_MS
        )
        return ControlOutcome(NO_ERROR, self.current, stop=True)

    def still_stopping(self) -> ServiceStatus | None:
        """The next ``SERVICE_STOP_PENDING`` (checkpoint + 1), or None when not stopping."""
        if self.current.state != SERVICE_STOP_PENDING:
            return None
        self.current = replace(self.current, checkpoint=self.current.checkpoint + 1)
        return self.current

    def stopped(self, exit_code: int) -> ServiceStatus:
        """``SERVICE_STOPPED``: 0 as is, any other code as a service-specific error."""
        if exit_code == 0:
            self.current = ServiceStatus(SERVICE_STOPPED)
        else:
            self.current = ServiceStatus(
                SERVICE_STOPPED,
                win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR,
                service_specific_exit_code=exit_code,
            )
        return self.current


class ServiceError(Exception):
    """The service could not start (not started by the SCM, or a failed advapi32 call)."""


class ServiceStatusStruct(ctypes.Structure):
    """``SERVICE_STATUS`` (seven DWORDs)."""

    _fields_ = [
        ("dwServiceType", wintypes.DWORD),
        ("dwCurrentState", wintypes.DWORD),
        ("dwControlsAccepted", wintypes.DWORD),
        ("dwWin32ExitCode", wintypes.DWORD),
        ("dwServiceSpecificExitCode", wintypes.DWORD),
        ("dwCheckPoint", wintypes.DWORD),
        ("dwWaitHint", wintypes.DWORD),
    ]


if sys.platform == "win32":  # pragma: no cover - Windows builds
    _FUNCTYPE = ctypes.WINFUNCTYPE
else:  # the same signatures, cdecl: lets the tests call the callbacks on Linux
    _FUNCTYPE = ctypes.CFUNCTYPE

_SERVICE_MAIN = _FUNCTYPE(None, wintypes.DWORD, ctypes.POINTER(wintypes.LPWSTR))
# LPSERVICE_MAIN_FUNCTIONW: void (DWORD argc, LPWSTR *argv)
_HANDLER_EX = _FUNCTYPE(
    wintypes.DWORD, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID, wintypes.LPVOID
)
# LPHANDLER_FUNCTION_EX: DWORD (DWORD control, DWORD type, LPVOID data, LPVOID context)


class ServiceTableEntry(ctypes.Structure):
    """``SERVICE_TABLE_ENTRYW``: a service name and its ServiceMain."""

    _fields_ = [("lpServiceName", wintypes.LPWSTR), ("lpServiceProc", _SERVICE_MAIN)]


def load_advapi32() -> Any:  # pragma: no cover - Windows only
    """advapi32 with the prototypes of the three functions used (Windows only)."""
    if sys.platform != "win32":
        raise ServiceError("advapi32 exists on Windows only")
    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    advapi32.StartServiceCtrlDispatcherW.argtypes = (ctypes.POINTER(ServiceTableEntry),)
    advapi32.StartServiceCtrlDispatcherW.restype = wintypes.BOOL
    advapi32.RegisterServiceCtrlHandlerExW.argtypes = (
        wintypes.LPCWSTR,
        _HANDLER_EX,
        wintypes.LPVOID,
    )
    advapi32.RegisterServiceCtrlHandlerExW.restype = wintypes.HANDLE
    advapi32.SetServiceStatus.argtypes = (wintypes.HANDLE, ctypes.POINTER(ServiceStatusStruct))
    advapi32.SetServiceStatus.restype = wintypes.BOOL
    return advapi32


def _last_error() -> int:
    if sys.platform == "win32":  # pragma: no cover - Windows builds
        return ctypes.get_last_error()
    return 0


class ServiceHost:
    """Runs ``run(stop)`` (the agent's loop) as the service ``name`` through ``advapi32``.

    ``advapi32`` is anything with ``StartServiceCtrlDispatcherW``,
    ``RegisterServiceCtrlHandlerExW`` and ``SetServiceStatus`` taking what the real
    functions take (see :func:`load_advapi32`). ``run`` must return soon after ``stop`` is
    set, with the exit code.
    """

    def __init__(
        self,
        run: Callable[[threading.Event], int],
        advapi32: Any,
        *,
        name: str = SERVICE_NAME,
        tick_s: float = STOP_TICK_S,
    ) -> None:
        self.run = run
        self.advapi32 = advapi32
        self.name = name
        self.tick_s = tick_s
        self.machine = ServiceStateMachine()
        self.stop = threading.Event()
        self.exit_code = 1
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._handle: Any = None
        self._ticker: threading.Thread | None = None
        # ctypes callbacks must outlive every call the SCM makes into them.
        self._main_callback = _SERVICE_MAIN(self._service_main)
        self._handler_callback = _HANDLER_EX(self._handler)

    def dispatch(self) -> int:
        """Connect to the SCM and serve until stopped; the agent's exit code.

        Raises :class:`ServiceError` when the dispatcher cannot start (error 1063: the
        process was not started by the service manager).
        """
        table = (ServiceTableEntry * 2)()
        table[0].lpServiceName = self.name
        table[0].lpServiceProc = self._main_callback
        if not self.advapi32.StartServiceCtrlDispatcherW(table):
            error = _last_error()
            if error == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
                raise ServiceError(
                    "not started by the Windows service manager (error 1063): "
                    "--service is for the service DexScopeAgent only"
                )
            raise ServiceError(f"StartServiceCtrlDispatcherW failed (error {error})")
        return self.exit_code

    def _service_main(self, _argc: int, _argv: Any) -> None:
        try:
            self.service_main()
        except Exception:  # pragma: no cover - nothing may escape into the SCM's thread
            log.exception("the service main failed")

    def service_main(self) -> None:
        """The ServiceMain: register the handler, report start, run the loop, report stop."""
        handle = self.advapi32.RegisterServiceCtrlHandlerExW(
            self.name, self._handler_callback, None
        )
        if not handle:
            log.error("RegisterServiceCtrlHandlerExW failed (error %d)", _last_error())
            return
        self._handle = handle
        with self._lock:
            self._report(self.machine.starting())
            self._report(self.machine.running())
        log.info("service %s running", self.name)
        try:
            code = self.run(self.stop)
        except Exception as exc:
            log.exception("the agent failed: %s: %s", type(exc).__name__, exc)
            code = 1
        self.exit_code = code
        self.stop.set()
        with self._lock:
            self._finished.set()
            self._report(self.machine.stopped(code))
        if self._ticker is not None:
            self._ticker.join()
        log.info("service %s stopped (exit code %d)", self.name, code)

    def _handler(self, control: int, _event_type: int, _data: Any, _context: Any) -> int:
        try:
            return self.handle(control)
        except Exception:  # pragma: no cover - nothing may escape into the SCM's thread
            log.exception("the service control handler failed")
            return NO_ERROR

    def handle(self, control: int) -> int:
        """The HandlerEx body: report what the state machine says; start stopping."""
        with self._lock:
            outcome = self.machine.control(control)
            if outcome.report is not None:
                self._report(outcome.report)
        if outcome.stop:
            log.info("service control %d: stopping", control)
            self.stop.set()
            self._ticker = threading.Thread(target=self._tick, name="service-stop", daemon=True)
            self._ticker.start()
        return outcome.result

    def _tick(self) -> None:
        while not self._finished.wait(self.tick_s):
            with self._lock:
                if self._finished.is_set():
                    return
                status = self.machine.still_stopping()
                if status is not None:
                    self._report(status)

    def _report(self, status: ServiceStatus) -> None:
        """``SetServiceStatus`` (called with ``_lock`` held, so reports keep their order)."""
        struct = ServiceStatusStruct(
            SERVICE_WIN32_OWN_PROCESS,
            status.state,
            status.controls_accepted,
            status.win32_exit_code,
            status.service_specific_exit_code,
            status.checkpoint,
            status.wait_hint_ms,
        )
        if not self.advapi32.SetServiceStatus(self._handle, ctypes.pointer(struct)):
            log.warning("SetServiceStatus(%d) failed (error %d)", status.state, _last_error())


def run_service(
    run: Callable[[threading.Event], int], advapi32: Any = None, *, name: str = SERVICE_NAME
) -> int:
    """Run ``run(stop)`` as the Windows service ``name``; its exit code (see
    :class:`ServiceHost`). ``advapi32`` defaults to the real DLL."""
    host = ServiceHost(run, advapi32 if advapi32 is not None else load_advapi32(), name=name)
    return host.dispatch()
