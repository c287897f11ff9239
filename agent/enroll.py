"""Enrollment: trade the tenant's enrollment token for this device's own identity.

``POST {server}/api/v1/enroll`` with a :class:`dexscope.wire.EnrollRequest`. 201 gives the
device id and token; a 4xx is a refusal (:class:`EnrollmentRefused` with the collector's
message); a network error, a timeout, a 429 (rate limited, with its ``Retry-After``) or a 5xx
is :class:`CollectorUnreachable` (try later).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from agent import platform
from agent.backoff import parse_retry_after
from agent.config import AgentConfig
from agent.errors import AgentConfigError, CollectorUnreachable, EnrollmentRefused
from agent.state import Identity
from dexscope import __version__
from dexscope.wire import EnrollRequest

__all__ = ["enroll", "enroll_request", "server_error_message"]


def enroll_request(config: AgentConfig) -> EnrollRequest:
    """The enrollment body for this machine (no serial numbers, no user names)."""
    if not config.enroll_token:
        raise AgentConfigError(
            "not enrolled yet: --enroll-token (or DEXSCOPE_ENROLL_TOKEN) is required"
        )
    request: EnrollRequest = {
        "enrollment_token": config.enroll_token,
        "hostname": platform.hostname()[:253] or "unknown",
        "os": platform.os_name(),
        "os_version": platform.os_version()[:128],
        "hardware": platform.hardware(),
        "agent_version": __version__,
        "tags": dict(config.tags),
    }
    if config.persona_hint:
        request["persona_hint"] = config.persona_hint[:64]
    return request


def server_error_message(response: httpx.Response) -> str:
    """The collector's error message (its ``{"error": {"message"}}`` body) or the status."""
    try:
        return str(response.json()["error"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def enroll(config: AgentConfig, client: httpx.Client) -> Identity:
    """Enroll with the collector and return the new identity (the caller saves it)."""
    if not config.server_url:
        raise AgentConfigError("not enrolled yet: --server (or DEXSCOPE_SERVER_URL) is required")
    body = enroll_request(config)
    try:
        response = client.post(f"{config.server_url}/api/v1/enroll", json=body)
    except httpx.HTTPError as exc:
        raise CollectorUnreachable(
            f"cannot reach the collector at {config.server_url}: {type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code == 429:
        wait = parse_retry_after(response.headers.get("retry-after"))
        later = f"retry in {wait:.0f} s" if wait is not None else "retry later"
        raise CollectorUnreachable(
            f"the collector at {config.server_url} is rate limiting enrollments: {later} "
            f"({server_error_message(response)})"
        )
    if 400 <= response.status_code < 500:
        raise EnrollmentRefused(
            response.status_code, server_error_message(response), config.server_url
        )
    if response.status_code != 201:
        raise CollectorUnreachable(
            f"the collector at {config.server_url} could not enroll this device: "
            f"HTTP {response.status_code} {server_error_message(response)}"
        )
    try:
        answer = response.json()
        device_id, device_token = str(answer["device_id"]), str(answer["device_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectorUnreachable(
            f"the collector at {config.server_url} sent an unreadable enrollment answer"
        ) from exc
    return Identity(
        device_id=device_id,
        device_token=device_token,
        server_url=config.server_url,
        enrolled_at=datetime.now(UTC).isoformat(),
    )
