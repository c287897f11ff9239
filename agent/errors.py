"""The agent's exception hierarchy: everything it raises on purpose is an :class:`AgentError`."""

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
    """The state directory holds no device identity."""


class EnrollmentRefused(AgentError):
    """The collector refused the enrollment (wrong, expired or revoked token)."""

    def __init__(self, server: str, status: int, message: str) -> None:
        super().__init__(f"enrollment refused by {server}: {message} (HTTP {status})")
        self.status = status


class CollectorUnreachable(AgentError):
    """The collector could not be reached (network error or timeout)."""
