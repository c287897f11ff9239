"""The ``dexscope`` command line.

Sub-command groups register themselves from their own packages (``agent.cli``,
``collector.cli``, ``dexscope.demo``, ``dexscope.simulate_cli``) and import their heavy
dependencies only inside their handlers, so ``dexscope agent run`` never loads the
collector's stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dexscope import __version__

__all__ = [
    "CliError",
    "build_parser",
    "dispatch",
    "main",
]


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    import agent.cli
    import collector.cli
    import dexscope.demo
    import dexscope.simulate_cli

    parser = argparse.ArgumentParser(
        prog="dexscope",
        description="DexScope: digital employee experience — agent, collector, reports.",
    )
    parser.add_argument("--version", action="version", version=f"dexscope {__version__}")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    agent_parser = groups.add_parser("agent", help="the workstation agent")
    agent.cli.register(agent_parser.add_subparsers(dest="agent_command", required=True))

    collector_parser = groups.add_parser("collector", help="the collector service")
    collector.cli.register_collector(
        collector_parser.add_subparsers(dest="collector_command", required=True)
    )
    admin_parser = groups.add_parser("admin", help="tenants, API keys and users")
    collector.cli.register_admin(admin_parser.add_subparsers(dest="admin_command", required=True))

    report_parser = groups.add_parser("report", help="client reports (XLA)")
    collector.cli.register_report(
        report_parser.add_subparsers(dest="report_command", required=True)
    )

    dexscope.demo.register(groups)
    dexscope.simulate_cli.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dexscope`` console script."""
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen handler: a :class:`CliError` becomes a one-line
    message and exit code 2, Ctrl-C exit code 130 (shared with the frozen agent's entry)."""
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
