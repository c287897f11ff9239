"""Enrollment: trade the tenant's enrollment token for this device's own token."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from agent import platform
from agent.config import AgentConfig
from agent.errors import AgentConfigError, CollectorUnreachable, EnrollmentRefused
from agent.state import Identity
from dexscope import __version__
from dexscope.wire import EnrollRequest

__all__ = ["enroll", "enroll_request", "server_error_message"]


def enroll_request(config: AgentConfig) -> EnrollRequest:
    """The enrollment body for this machine."""
    assert config.enroll_token is not None
    request: EnrollRequest = {
        "enrollment_token": config.enroll_token,
        "hostname": platform.hostname(),
        "os": platform.os_name(),  # type: ignore[typeddict-item]
        "os_version": platform.os_version()[:128],
        "hardware": platform.hardware(),
        "agent_version": __version__,
        "tags": dict(config.tags),
    }
    if config.persona_hint:
        request["persona_hint"] = config.persona_hint
    return request


def server_error_message(response: httpx.Response) -> str:
    """The collector's error message (its JSON error shape), or the status text."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def enroll(config: AgentConfig, client: httpx.Client) -> tuple[Identity, dict[str, object]]:
    """Enroll with the collector; returns the identity and the server's configuration."""
    if not config.server_url:
        raise AgentConfigError("not enrolled yet: --server (or DEXSCOPE_SERVER_URL) is required")
    if not config.enroll_token:
        raise AgentConfigError(
            "not enrolled yet: --enroll-token (or DEXSCOPE_ENROLL_TOKEN) is required"
        )
    try:
        response = client.post(f"{config.server_url}/api/v1/enroll", json=enroll_request(config))
    except httpx.HTTPError as exc:
        raise CollectorUnreachable(
            f"cannot reach the collector at {config.server_url}: {type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code != 201:
        raise EnrollmentRefused(
            config.server_url, response.status_code, server_error_message(response)
        )
    body = response.json()
    identity = Identity(
        device_id=str(body["device_id"]),
        device_token=str(body["device_token"]),
        server_url=config.server_url,
        enrolled_at=datetime.now(UTC).isoformat(),
    )
    server_config = body.get("config")
    return identity, server_config if isinstance(server_config, dict) else {}
