"""TLS: ``dexscope collector serve --tls-cert --tls-key`` as a real process, real agents.

A ``trustme`` CA signs a server certificate for 127.0.0.1 and localhost. An agent whose
``ca_bundle`` is that CA enrolls and uploads over https://localhost; one without it fails
with a certificate error and stores nothing. Plain HTTP to a host other than loopback is
refused when the configuration is validated, unless ``allow_insecure_http`` is set.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from agent.config import AgentConfig, ConfigLayers
from agent.errors import AgentConfigError
from agent.samplers import load_builtin_samplers
from tests.support import REPO, count_rows, create_tenant, dexscope_cmd, free_port, run_cli


@dataclass
class Pki:
    """The files of a test CA and of a server certificate it signed."""

    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = Pki(where / "ca.pem", where / "server.pem", where / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    server.private_key_pem.write_to_path(str(paths.key))
    with paths.cert.open("wb") as out:
        for blob in server.cert_chain_pems:
            out.write(blob.bytes())
    return paths


@pytest.fixture
def https_collector(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, str]]:
    """(database URL, https://localhost:PORT) of a collector serving HTTPS."""
    database_url = f"sqlite:///{tmp_path / 'collector.db'}"
    port = free_port()
    log_path = tmp_path / "collector.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            dexscope_cmd(
                "collector",
                "serve",
                "--database-url",
                database_url,
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--tls-cert",
                str(pki.cert),
                "--tls-key",
                str(pki.key),
            ),
            stdout=log,
            stderr=log,
            cwd=REPO,
            env=dict(os.environ),
        )
    url = f"https://localhost:{port}"
    trust = ssl.create_default_context(cafile=str(pki.ca))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", verify=trust, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        yield database_url, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _agent(url: str, token: str, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "agent",
        "run",
        "--server",
        url,
        "--enroll-token",
        token,
        "--state-dir",
        str(state),
        "--once",
        *extra,
        check=False,
    )


def test_agent_with_the_ca_bundle_enrolls_and_uploads_over_https(
    https_collector: tuple[str, str], pki: Pki, tmp_path: Path
) -> None:
    database_url, url = https_collector
    tenant = create_tenant(database_url)

    # plain HTTP to the HTTPS port gets nowhere
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/readyz", timeout=5)

    # no CA bundle: the system trust store does not know the test CA
    refused = _agent(url, tenant.enrollment_token, tmp_path / "untrusting")
    assert refused.returncode == 3, refused.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr
    assert count_rows(database_url, "devices") == 0
    assert count_rows(database_url, "events") == 0

    config = tmp_path / "agent.toml"
    config.write_text(f'ca_bundle = "{pki.ca.as_posix()}"\n')
    state = tmp_path / "trusting"
    ok = _agent(url, tenant.enrollment_token, state, "--config", str(config))
    assert ok.returncode == 0, ok.stderr
    assert "upload failed" not in ok.stderr, ok.stderr
    assert "Warning" not in ok.stderr, ok.stderr
    assert count_rows(database_url, "devices") == 1
    assert count_rows(database_url, "events") > 0


def test_serve_refuses_half_or_unreadable_tls_settings(tmp_path: Path, pki: Pki) -> None:
    database_url = f"sqlite:///{tmp_path / 'collector.db'}"
    base = ("collector", "serve", "--database-url", database_url, "--port", str(free_port()))
    half = run_cli(*base, "--tls-cert", str(pki.cert), check=False, timeout=60)
    assert half.returncode == 2
    assert half.stderr.strip() == (
        "error: HTTPS needs both --tls-cert and --tls-key (or DEXSCOPE_TLS_CERT/_KEY)"
    )
    env_half = run_cli(*base, env={"DEXSCOPE_TLS_KEY": str(pki.key)}, check=False, timeout=60)
    assert env_half.returncode == 2 and "needs both" in env_half.stderr

    missing = tmp_path / "nope.pem"
    unreadable = run_cli(
        *base, "--tls-cert", str(missing), "--tls-key", str(pki.key), check=False, timeout=60
    )
    assert unreadable.returncode == 2
    assert unreadable.stderr.strip() == (
        f"error: cannot read TLS certificate {missing}: No such file or directory"
    )
    assert len(unreadable.stderr.strip().splitlines()) == 1

    wrong = run_cli(
        *base, "--tls-cert", str(pki.key), "--tls-key", str(pki.cert), check=False, timeout=60
    )
    assert wrong.returncode == 2 and "are not usable" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def _build(tmp_path: Path, **flags: object) -> AgentConfig:
    layers = ConfigLayers.load(
        flags={"state_dir": str(tmp_path), **flags},
        config_file=None,
        environ={},
        known_samplers=frozenset(load_builtin_samplers()),
    )
    return layers.build()


def test_plain_http_to_another_host_needs_the_explicit_opt_in(tmp_path: Path) -> None:
    for url in ("http://collector.example:8080", "http://10.1.2.3"):
        with pytest.raises(AgentConfigError, match="must start with https://"):
            _build(tmp_path, server_url=url)
    for url in ("https://collector.example", "http://127.0.0.1:8080", "http://localhost"):
        _build(tmp_path, server_url=url)
    config = _build(tmp_path, server_url="http://collector.example:8080", allow_insecure_http=True)
    assert config.allow_insecure_http is True
    with pytest.raises(AgentConfigError, match="allow_insecure_http must be true or false"):
        _build(tmp_path, server_url="http://collector.example", allow_insecure_http="yes")

    refused = run_cli(
        "agent",
        "run",
        "--server",
        "http://collector.invalid:8080",
        "--enroll-token",
        "dxe_x",
        "--state-dir",
        str(tmp_path / "a"),
        "--once",
        check=False,
    )
    assert refused.returncode == 2
    assert "server_url must start with https://" in refused.stderr
    opted_in = run_cli(
        "agent",
        "run",
        "--server",
        "http://collector.invalid:8080",
        "--enroll-token",
        "dxe_x",
        "--state-dir",
        str(tmp_path / "b"),
        "--once",
        "--allow-insecure-http",
        check=False,
    )
    assert opted_in.returncode == 3, opted_in.stderr  # accepted; the host does not exist
    assert "WARNING" in opted_in.stderr and "plain HTTP" in opted_in.stderr
