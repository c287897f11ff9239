"""``dexscope demo``: a collector on embedded SQLite with this machine's agent reporting to it.

It starts real processes — ``dexscope collector serve``, ``dexscope agent run`` and
``dexscope collector jobs`` — in a data directory, creates a tenant and a dashboard login,
loads a simulated fleet through the public API on the first run (``dexscope simulate``:
``--devices`` devices over the last ``--days`` days; ``--devices 0`` for none), prints the
URL and the login, and stops everything cleanly on Ctrl-C. The collector's jobs (scoring,
XLA evaluation, retention) run once before the URLs are printed, then every minute.

Once the fleet is scored, the demo tenant gets the example XLAs shipped with the package
(``dexscope/examples/xlas.yaml``, imported with ``dexscope admin import-xlas`` on every start:
unchanged ones stay as they are), and the demo writes their client report of the month
holding most of the fleet's days as a PDF into the data directory (``dexscope report xla``,
which evaluates that month; a one-line note instead when Chromium is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register", "run_demo"]


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    p = groups.add_parser(
        "demo", help="run a collector and this machine's agent, with the dashboard"
    )
    p.add_argument("--port", type=int, default=8080, help="dashboard/API port (default 8080)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dexscope-demo"),
        help="where the demo keeps its data",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback)")
    p.add_argument(
        "--devices",
        type=int,
        default=25,
        help="simulated devices loaded on the first run (default 25; 0 for none)",
    )
    p.add_argument(
        "--days", type=int, default=7, help="days of simulated history (default 7, at most 30)"
    )
    p.set_defaults(func=run_demo)


def _dexscope(*args: str) -> list[str]:
    """The command line of a ``dexscope`` command run by this interpreter.

    ``-m dexscope`` (not ``-m dexscope.cli``, which would load the CLI module twice, as
    ``__main__`` too, so its errors would end in a traceback instead of one line).
    """
    return [sys.executable, "-m", "dexscope", *args]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    from dexscope.cli import CliError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(f"the collector exited with code {proc.returncode}; see its log above")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise CliError(f"the collector did not become ready at {url} within {timeout_s:.0f} s")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _load_fleet(
    args: argparse.Namespace,
    state: dict[str, Any],
    state_path: Path,
    data_dir: Path,
    url: str,
    env: dict[str, str],
    console: Console,
) -> None:
    """Upload the simulated fleet once (remembered in the demo's state file).

    A failure is reported and the demo goes on without the fleet: this machine's agent is
    still there to look at.
    """
    if args.devices == 0:
        return
    if "fleet" in state:
        fleet = state["fleet"]
        if (fleet["devices"], fleet["days"]) != (args.devices, args.days):
            console.print(
                f"[yellow]this data directory already holds a fleet of {fleet['devices']} "
                f"devices over {fleet['days']} days; use another --data-dir for a new one[/]"
            )
        return
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    console.print(f"Loading a simulated fleet: {args.devices} devices, {args.days} days…")
    result = subprocess.run(
        _dexscope(
            "simulate",
            "--devices",
            str(args.devices),
            "--days",
            str(args.days),
            "--seed",
            "1",
            "--end",
            end.isoformat(),
            "--out",
            str(data_dir / "fleet"),
            "--server",
            url,
            "--enroll-token",
            state["enrollment_token"],
        ),
        env=env,
        check=False,
    )
    if result.returncode != 0:
        console.print(
            f"[yellow]the simulated fleet could not be loaded (exit {result.returncode}); "
            "the demo goes on with this machine's agent only[/]"
        )
        return
    state["fleet"] = {"devices": args.devices, "days": args.days, "end": end.isoformat()}
    state_path.write_text(json.dumps(state))


def _run_jobs(db_url: str, env: dict[str, str], log_dir: Path, console: Console) -> None:
    """Run the collector's jobs once (scoring, detection, XLA evaluation, …), in the foreground.

    Their output goes to the jobs log. A failing job is reported and the demo goes on: the
    jobs run again every minute.
    """
    from rich.markup import escape

    result = subprocess.run(
        _dexscope("collector", "jobs", "--once", "--database-url", db_url),
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    with (log_dir / "jobs.log").open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        console.print(
            f"[yellow]the collector's jobs failed: {escape(_last_line(result.stderr))}[/]",
            soft_wrap=True,
        )


def _last_line(text: str) -> str:
    """The last non-empty line of a command's output (its one-line error, without the
    ``error:`` prefix)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "no output"


def _import_xlas(tenant_id: str, db_url: str, env: dict[str, str], console: Console) -> bool:
    """Import the example XLAs shipped with the package for the demo tenant.

    Importing again is harmless (unchanged definitions stay as they are; a changed example
    becomes a new version). Returns whether the import succeeded.
    """
    from rich.markup import escape

    source = resources.files("dexscope") / "examples" / "xlas.yaml"
    with resources.as_file(source) as path:
        result = subprocess.run(
            _dexscope(
                "admin",
                "import-xlas",
                str(path),
                "--tenant",
                tenant_id,
                "--database-url",
                db_url,
                "--json",
            ),
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        console.print(
            "[yellow]the example XLAs could not be imported: "
            f"{escape(_last_line(result.stderr))}[/]",
            soft_wrap=True,
        )
        return False
    saved = json.loads(result.stdout)
    console.print(
        f"XLAs: {len(saved['xlas'])} example XLAs for the demo tenant "
        f"({saved['created']} created, {saved['versioned']} versioned, "
        f"{saved['unchanged']} unchanged)"
    )
    return True


def _report_period(state: dict[str, Any]) -> str:
    """The month (``YYYY-MM``) holding most days of the demo's fleet (the later one on a tie);
    the current month without a fleet."""
    fleet = state.get("fleet")
    if fleet is None:
        return datetime.now(UTC).strftime("%Y-%m")
    end = datetime.fromisoformat(fleet["end"]).date()
    days: dict[str, int] = {}
    for offset in range(int(fleet["days"])):
        day: date = end - timedelta(days=offset)
        label = day.strftime("%Y-%m")
        days[label] = days.get(label, 0) + 1
    return max(days, key=lambda label: (days[label], label))


def _write_report_pdf(
    tenant_id: str, period: str, out: Path, db_url: str, env: dict[str, str], console: Console
) -> bool:
    """Write the tenant's XLA report of ``period`` as a PDF (``dexscope report xla``).

    A failure (typically: no Chromium on this machine) is a one-line note, not an error.
    Returns whether the file was written.
    """
    from rich.markup import escape

    result = subprocess.run(
        _dexscope(
            "report",
            "xla",
            "--database-url",
            db_url,
            "--tenant",
            tenant_id,
            "--period",
            period,
            "--format",
            "pdf",
            "--out",
            str(out),
        ),
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        console.print(
            f"[yellow]no PDF report: {escape(_last_line(result.stderr))}[/]", soft_wrap=True
        )
        return False
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C (or SIGTERM)."""
    from rich.console import Console

    from dexscope.cli import CliError

    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and a service manager's SIGTERM stop the demo and its processes, also when
        # it was started from a shell that ignores SIGINT in background jobs (Python then
        # installs no Ctrl-C handler of its own).
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    console = Console(stderr=True)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.devices < 0 or args.devices > 10_000:
        raise CliError("--devices must be between 0 and 10000")
    if not 1 <= args.days <= 30:
        raise CliError("--days must be between 1 and 30 (the collector keeps 35 days)")
    if not _port_free(args.host, args.port):
        raise CliError(f"port {args.port} is in use; pick another with --port")
    db_url = f"sqlite:///{data_dir / 'collector.db'}"
    url = f"http://{args.host}:{args.port}"
    state_path = data_dir / "demo.json"
    running_path = data_dir / "running.json"
    running_path.unlink(missing_ok=True)  # left by a demo that was killed
    env = {**os.environ, "DEXSCOPE_DATABASE_URL": db_url}

    with console.status("Preparing the database…"):
        subprocess.run(
            _dexscope("collector", "migrate", "--database-url", db_url),
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        if state_path.exists():
            state = json.loads(state_path.read_text())
        else:
            tenant = json.loads(
                subprocess.run(
                    _dexscope("admin", "create-tenant", "Demo", "--database-url", db_url, "--json"),
                    check=True,
                    env=env,
                    capture_output=True,
                ).stdout
            )
            password = secrets.token_urlsafe(12)
            subprocess.run(
                _dexscope(
                    "admin",
                    "create-user",
                    "admin@demo.dexscope",
                    "--role",
                    "admin",
                    "--database-url",
                    db_url,
                    "--password-stdin",
                ),
                input=(password + "\n").encode(),
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            state = {
                "tenant_id": tenant["tenant_id"],
                "enrollment_token": tenant["enrollment_token"],
                "email": "admin@demo.dexscope",
                "password": password,
            }
            state_path.write_text(json.dumps(state))
            state_path.chmod(0o600)

    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    collector_log = (log_dir / "collector.log").open("ab")
    agent_log = (log_dir / "agent.log").open("ab")
    collector = subprocess.Popen(
        _dexscope(
            "collector",
            "serve",
            "--database-url",
            db_url,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--no-migrate",
            "--log-level",
            "warning",
        ),
        env=env,
        stdout=collector_log,
        stderr=collector_log,
    )
    procs: list[subprocess.Popen[bytes]] = [collector]
    try:
        with console.status("Starting the collector…"):
            _wait_ready(url, collector)
        agent = subprocess.Popen(
            _dexscope(
                "agent",
                "run",
                "--server",
                url,
                "--enroll-token",
                state["enrollment_token"],
                "--state-dir",
                str(data_dir / "agent"),
            ),
            env=env,
            stdout=agent_log,
            stderr=agent_log,
        )
        procs.append(agent)
        _load_fleet(args, state, state_path, data_dir, url, env, console)
        with console.status("Scoring the fleet (the collector's jobs)…"):
            _run_jobs(db_url, env, log_dir, console)
        with console.status("Importing the example XLAs…"):
            xlas = _import_xlas(state["tenant_id"], db_url, env, console)
        period = _report_period(state)
        report_pdf = data_dir / f"xla-report-{period}.pdf"
        pdf_written = False
        if xlas:
            # The report evaluates its period (and stores the evaluations); the jobs started
            # below evaluate the current and the previous period at once.
            with console.status("Evaluating the XLAs and writing their report…"):
                pdf_written = _write_report_pdf(
                    state["tenant_id"], period, report_pdf, db_url, env, console
                )
        jobs_log = (log_dir / "jobs.log").open("ab")
        procs.append(
            subprocess.Popen(
                _dexscope("collector", "jobs", "--database-url", db_url, "--interval", "60"),
                env=env,
                stdout=jobs_log,
                stderr=jobs_log,
            )
        )
        jobs_log.close()  # the child holds its own descriptor
        console.print(f"[bold green]DexScope demo running[/] — dashboard: [link]{url}/[/link]")
        console.print(
            f"  sign in as [bold]{state['email']}[/] with password [bold]{state['password']}[/]"
        )
        if xlas:
            report = f"{url}/api/v1/reports/xla?" + urlencode(
                {"tenant": state["tenant_id"], "period": period}
            )
            console.print(
                f"  XLAs: [link]{url}/xlas[/link] — MSP overview: [link]{url}/msp[/link]",
                soft_wrap=True,
            )
            console.print(
                f"  client report {period}: [link]{report}&format=html[/link]", soft_wrap=True
            )
            console.print(f"    as PDF: [link]{report}&format=pdf[/link]", soft_wrap=True)
            if pdf_written:
                console.print(f"    written to {report_pdf}", soft_wrap=True)
        console.print(f"  data and logs in {data_dir}; Ctrl-C stops everything.")
        # for scripts (and the tests): everything is up; removed again when the demo stops
        running_path.write_text(json.dumps({"dashboard_url": url, "pid": os.getpid()}))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        for p in procs:
            if p.poll() is not None:
                raise CliError(f"a demo process exited with code {p.returncode}; logs in {log_dir}")
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        running_path.unlink(missing_ok=True)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        stop_by = time.monotonic() + 15  # one grace period for all, not 15 s each
        for p in reversed(procs):
            try:
                p.wait(timeout=max(0.1, stop_by - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        collector_log.close()
        agent_log.close()
    return 0
