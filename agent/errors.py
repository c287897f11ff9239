"""The agent's exception hierarchy: everything it raises on purpose is an :class:`AgentError`.

Callers (the command line) map these to exit codes: a refused enrollment is 2, an
unreachable collector at first enrollment is 3, an invalid configuration is a one-line error.
"""

from __future__ import annotations

__all__ = [
    "AgentConfigError",
    "AgentError",
    "CollectorUnreachable",
    "EnrollmentRefused",
    "NotEnrolled",
]


class AgentError(Exception):
    """Base of the agent's own errors."""


class AgentConfigError(AgentError):
    """The configuration is invalid; the message names the key."""


class NotEnrolled(AgentError):
    """The state directory holds no (readable) device identity."""


class EnrollmentRefused(AgentError):
    """The collector refused the enrollment (wrong, expired or revoked token).

    ``status`` is the HTTP status and ``message`` the collector's own error message (its
    ``{"error": {"code", "message"}}`` body); ``server`` is the collector's URL when known.
    """

    def __init__(self, status: int, message: str, server: str | None = None) -> None:
        where = f" by {server}" if server else ""
        super().__init__(f"enrollment refused{where}: {message}")
        self.status = status
        self.message = message
        self.server = server


class CollectorUnreachable(AgentError):
    """The collector could not be reached (network error, timeout or a server error)."""
