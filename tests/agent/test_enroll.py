"""The enrollment request and error mapping (the HTTP exchange itself is end-to-end tested)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pydantic
import pytest

from agent.config import AgentConfig, ConfigLayers
from agent.enroll import enroll, enroll_request
from agent.errors import AgentConfigError, AgentError, CollectorUnreachable, EnrollmentRefused
from agent.samplers import load_builtin_samplers
from dexscope import __version__
from dexscope.wire import EnrollRequest


def config_for(tmp_path: Path, **flags: object) -> AgentConfig:
    return ConfigLayers.load(
        flags={"state_dir": str(tmp_path), **flags},
        config_file=None,
        environ={},
        known_samplers=frozenset(load_builtin_samplers()),
    ).build()


def test_request_is_valid_wire_and_describes_this_machine(tmp_path: Path) -> None:
    config = config_for(
        tmp_path,
        server_url="https://dex.example",
        enroll_token="et_123",
        persona_hint="developer",
        tags={"site": "lyon"},
    )
    request = enroll_request(config)
    validated = pydantic.TypeAdapter(EnrollRequest).validate_python(request, strict=True)
    assert validated["os"] == "linux"
    assert validated["agent_version"] == __version__
    assert validated["persona_hint"] == "developer" and validated["tags"] == {"site": "lyon"}
    hardware = validated["hardware"]
    assert isinstance(hardware["cpu_count"], int) and hardware["cpu_count"] >= 1
    assert isinstance(hardware["memory_mb"], int) and hardware["memory_mb"] > 0
    assert hardware["arch"]
    model = Path("/sys/class/dmi/id/product_name")
    assert ("model" in hardware) == (model.exists() and bool(model.read_text().strip()))


def test_errors_share_one_base_and_read_as_one_line() -> None:
    refused = EnrollmentRefused(401, "enrollment token expired", "https://dex.example")
    assert str(refused) == "enrollment refused by https://dex.example: enrollment token expired"
    assert (refused.status, refused.message) == (401, "enrollment token expired")
    for cls in (AgentConfigError, CollectorUnreachable, EnrollmentRefused):
        assert issubclass(cls, AgentError)


def test_missing_server_or_token_is_a_config_error(tmp_path: Path) -> None:
    with httpx.Client() as client:
        with pytest.raises(AgentConfigError, match="--server"):
            enroll(config_for(tmp_path, enroll_token="t"), client)
        with pytest.raises(AgentConfigError, match="--enroll-token"):
            enroll(config_for(tmp_path, server_url="https://dex.example"), client)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    config = config_for(tmp_path, server_url=url, enroll_token="t")
    with httpx.Client(timeout=5) as client, pytest.raises(CollectorUnreachable, match=url):
        enroll(config, client)
