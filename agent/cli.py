"""``dexscope agent run|status|survey-helper``: argument parsing; handlers import lazily.

Exit codes of ``run``: 0 done (or stopped by SIGTERM/SIGINT; with ``--once`` also when the
collector was unreachable after enrollment: the data stays spooled), 2 enrollment refused or
bad input, 3 collector unreachable at first enrollment. ``run --service`` (Windows only: the
Service Control Manager starts it; elsewhere exit 2 with a one-line error) reports the same
codes as the service's exit code, and 4 when the watchdog wants the agent restarted (the
service's recovery actions do it). ``status``: 0, or 2 when the state
directory holds no identity. ``survey-helper``: 0, or 2 when the survey box (``--box DIR``
or ``DEXSCOPE_SURVEY_BOX``, the shared box of a system service; or ``STATE_DIR/surveys``
with ``--state-dir``) is missing or unusable, or (with ``--once``) no window can be opened.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_FORMAT",
    "SERVICE_ELSEWHERE",
    "helper_box",
    "register",
    "service_log_handler",
    "service_loop",
]

log = logging.getLogger("dexscope.agent")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``status`` and ``survey-helper`` to the ``dexscope agent`` group."""
    p = sub.add_parser("run", help="enroll on first start, then sample, spool and upload")
    p.add_argument("--server", help="collector URL (or DEXSCOPE_SERVER_URL)")
    p.add_argument("--enroll-token", help="tenant enrollment token (or DEXSCOPE_ENROLL_TOKEN)")
    p.add_argument("--state-dir", type=Path, help="where identity and spool live")
    p.add_argument("--once", action="store_true", help="one sampling round and upload, then exit")
    p.add_argument("--persona-hint", help="persona suggested to the collector")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="installer tag")
    p.add_argument("--config", type=Path, help="agent TOML file (or DEXSCOPE_AGENT_CONFIG)")
    p.add_argument(
        "--survey-box",
        type=Path,
        metavar="DIR",
        help="a survey box shared with every local account, outside the private state folder "
        "(system service with per-user helpers; or DEXSCOPE_SURVEY_BOX)",
    )
    p.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=None,
        help="allow a plain http:// server other than loopback (unencrypted; not advised)",
    )
    p.add_argument(
        "--service",
        action="store_true",
        help="run under the Windows service manager (the MSI's service DexScopeAgent)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)

    p = sub.add_parser("status", help="device id, spool depth, last upload and error")
    p.add_argument("--state-dir", type=Path, help="the agent's state dir (or DEXSCOPE_STATE_DIR)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_status)

    p = sub.add_parser(
        "survey-helper",
        help="show survey prompts in the user's session (run as the user, not the service)",
        description="Poll the prompt box (--box DIR, or STATE_DIR/surveys with --state-dir) "
        "and show each pending prompt in a small always-on-top dialog; answers go back to the "
        "box for the agent to spool.",
    )
    p.add_argument(
        "--box",
        type=Path,
        metavar="DIR",
        help="the shared survey box of a system service (its --survey-box; or DEXSCOPE_SURVEY_BOX)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        help="the agent's state dir, for its private box STATE_DIR/surveys (or DEXSCOPE_STATE_DIR)",
    )
    p.add_argument("--once", action="store_true", help="show what is pending now, then exit")
    p.add_argument(
        "--timeout-s", type=float, default=120.0, help="close an unanswered dialog after this"
    )
    p.add_argument("--poll-s", type=float, default=10.0, help="seconds between box checks")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_survey_helper)


def _tags(pairs: list[str]) -> dict[str, str] | None:
    from dexscope.cli import CliError

    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--tag {pair!r} must be KEY=VALUE")
        tags[key] = value
    return tags or None


SERVICE_ELSEWHERE = (
    "--service is for the Windows service manager; use systemd/launchd units on Linux/macOS"
)


def _run(args: argparse.Namespace) -> int:
    from agent.errors import AgentConfigError, CollectorUnreachable, EnrollmentRefused, NotEnrolled
    from agent.main import run_agent
    from dexscope.cli import CliError

    if args.service and sys.platform != "win32":
        raise CliError(SERVICE_ELSEWHERE)
    if args.service and args.once:
        raise CliError("--service and --once cannot be combined")
    handler: logging.Handler = (
        service_log_handler(args.state_dir)
        if args.service and args.state_dir
        else logging.StreamHandler(sys.stderr)
    )
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler], format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    flags = {
        "server_url": args.server,
        "enroll_token": args.enroll_token,
        "state_dir": str(args.state_dir) if args.state_dir else None,
        "persona_hint": args.persona_hint,
        "tags": _tags(args.tag),
        "allow_insecure_http": args.allow_insecure_http,
        "survey_box": str(args.survey_box) if args.survey_box else None,
    }
    if args.service:  # pragma: no cover - Windows builds (tested with a fake advapi32)
        return _run_service(flags, args.config)
    try:
        return run_agent(flags, args.config, once=args.once)
    except EnrollmentRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CollectorUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (AgentConfigError, NotEnrolled) as exc:
        raise CliError(str(exc)) from exc


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The agent's log line."""


def service_log_handler(state_dir: Path) -> logging.Handler:
    """Where a service's log goes: it has no console, so ``<state_dir>/logs/agent.log``,
    rotated at 1 MiB with 3 old files kept (what the agent logs holds no personal data)."""
    from logging.handlers import RotatingFileHandler

    logs = Path(state_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return RotatingFileHandler(
        logs / "agent.log", maxBytes=1024 * 1024, backupCount=3, encoding="utf-8"
    )


def _run_service(flags: dict[str, Any], config_file: Path | None) -> int:
    """``run --service``: the agent's loop as the Windows service (exit codes as ``run``)."""
    from agent.platform.windows_service import ServiceError, run_service
    from dexscope.cli import CliError

    try:
        return run_service(service_loop(flags, config_file))
    except ServiceError as exc:
        raise CliError(str(exc)) from exc


def service_loop(
    flags: dict[str, Any], config_file: Path | None
) -> Callable[[threading.Event], int]:
    """The service's loop: :func:`agent.main.run_agent` until ``stop`` is set, errors turned
    into ``run``'s exit codes and logged (a service has no console)."""
    from agent.errors import AgentConfigError, CollectorUnreachable, EnrollmentRefused, NotEnrolled
    from agent.main import run_agent

    def loop(stop: threading.Event) -> int:
        try:
            return run_agent(flags, config_file, once=False, stop=stop)
        except EnrollmentRefused as exc:
            log.error("%s", exc)
            return 2
        except CollectorUnreachable as exc:
            log.error("%s", exc)
            return 3
        except (AgentConfigError, NotEnrolled) as exc:
            log.error("%s", exc)
            return 2

    return loop


def _status(args: argparse.Namespace) -> int:
    from agent.errors import NotEnrolled
    from agent.main import print_status
    from dexscope.cli import CliError

    state_dir = args.state_dir or (
        Path(os.environ["DEXSCOPE_STATE_DIR"]) if os.environ.get("DEXSCOPE_STATE_DIR") else None
    )
    if state_dir is None:
        raise CliError("--state-dir (or DEXSCOPE_STATE_DIR) is required")
    try:
        print_status(state_dir, args.json)
    except NotEnrolled as exc:
        raise CliError(str(exc)) from exc
    return 0


def _survey_helper(args: argparse.Namespace) -> int:
    from agent.surveys.box import BoxError
    from agent.surveys.dialog import DialogError, run_helper
    from dexscope.cli import CliError

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not 0 < args.timeout_s <= 86400 or not 0 < args.poll_s <= 86400:
        raise CliError("--timeout-s and --poll-s must be more than 0 and at most 86400")
    try:
        return run_helper(
            helper_box(args.box, args.state_dir, os.environ),
            once=args.once,
            timeout_s=args.timeout_s,
            poll_s=args.poll_s,
        )
    except (BoxError, DialogError) as exc:
        raise CliError(str(exc)) from exc


def helper_box(box: Path | None, state_dir: Path | None, environ: Mapping[str, str]) -> Path:
    """The box the survey helper opens: ``--box`` or ``--state-dir`` (``STATE_DIR/surveys``),
    else ``DEXSCOPE_SURVEY_BOX`` or ``DEXSCOPE_STATE_DIR``; exactly one of them.

    A flag wins over both variables (an explicit choice); with no flag, both variables set
    is as ambiguous as both flags. Raises :class:`dexscope.cli.CliError` otherwise.
    """
    from dexscope.cli import CliError

    if box is not None and state_dir is not None:
        raise CliError("--box and --state-dir cannot be combined (give the box the helper opens)")
    if box is not None:
        return box
    if state_dir is not None:
        return state_dir / "surveys"
    env_box = environ.get("DEXSCOPE_SURVEY_BOX")
    env_state = environ.get("DEXSCOPE_STATE_DIR")
    if env_box and env_state:
        raise CliError(
            "DEXSCOPE_SURVEY_BOX and DEXSCOPE_STATE_DIR are both set: pass --box or --state-dir"
        )
    if env_box:
        return Path(env_box)
    if env_state:
        return Path(env_state) / "surveys"
    raise CliError(
        "--box (or DEXSCOPE_SURVEY_BOX) or --state-dir (or DEXSCOPE_STATE_DIR) is required"
    )
