"""Entry point of the frozen ``dexscope-agent`` program (PyInstaller).

The frozen agent carries only the ``agent`` command group of the ``dexscope`` command line:
``dexscope-agent agent run …`` and ``dexscope-agent agent status …`` take exactly the
arguments of ``dexscope agent run|status``, because both parsers come from
:func:`agent.cli.register` (so will later sub-commands such as ``agent survey-helper``).

Only the agent side is imported: :mod:`agent` (which keeps httpx's command-line tool out of
the process), :mod:`agent.cli` and :mod:`dexscope.cli` (for :class:`~dexscope.cli.CliError`,
which imports nothing heavy at module level). The collector, scoring and their stacks are
never imported here, and the PyInstaller spec excludes them from the bundle.

The same file runs from a source checkout (``python installers/pyinstaller/agent_entry.py``),
which the tests use; it then puts the repository root on ``sys.path`` when ``agent`` is not
importable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not getattr(sys, "frozen", False):  # a source checkout: make `agent` importable
    _ROOT = str(Path(__file__).resolve().parents[2])
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

import agent  # first: blocks httpx._main before anything imports httpx
import agent.cli
from dexscope import __version__
from dexscope.cli import dispatch

__all__ = ["BUILD_INFO_NAME", "PROG", "build_info", "build_parser", "main", "version_string"]

PROG = "dexscope-agent"
"""The program's name (the executable is ``dexscope-agent`` / ``dexscope-agent.exe``)."""

BUILD_INFO_NAME = "dexscope_agent_build.json"
"""The JSON file the spec writes into the bundle: version, Python, platform, build epoch."""


def build_info() -> dict[str, Any] | None:
    """What the spec stamped into the bundle, or ``None`` when not frozen (or unreadable)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or bundle is None:
        return None
    try:
        info = json.loads((Path(bundle) / BUILD_INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def version_string() -> str:
    """The ``--version`` line: program, :data:`dexscope.__version__`, and how it was built."""
    text = f"{PROG} {__version__}"
    info = build_info()
    if info is None:
        return f"{text} (source, python {sys.version.split()[0]})"
    stamped = info.get("version")
    if stamped and stamped != __version__:  # the bundle holds a different dexscope package
        text += f" (stamped {stamped})"
    return f"{text} (frozen, python {info.get('python', '?')}, {info.get('platform', '?')})"


def build_parser() -> argparse.ArgumentParser:
    """The frozen program's parser: ``--version`` and the ``agent`` command group only."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="DexScope workstation agent (the `dexscope agent` commands, stand-alone).",
    )
    parser.add_argument("--version", action="version", version=version_string())
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    agent_parser = groups.add_parser("agent", help="the workstation agent")
    agent.cli.register(agent_parser.add_subparsers(dest="agent_command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen handler; the exit codes of ``dexscope agent``."""
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
