"""The ``probe`` sampler against real servers on loopback (HTTP, HTTPS, silent, refused).

No mocks of our code: each test starts a real server in a thread (or a socket that never
answers) and probes it through :class:`agent.samplers.probe.ProbeSampler`. Every event is
held to the collector's strict wire schema.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from agent.config import ConfigLayers
from agent.errors import AgentConfigError
from agent.jsonutil import dumps
from agent.runner import build_samplers
from agent.samplers import REGISTRY, SamplerContext, load_builtin_samplers
from agent.samplers.probe import MAX_TARGETS, ProbeSampler, parse_options
from collector.ingest.schemas import EVENT
from dexscope import __version__
from dexscope.wire import Event

# ---------------------------------------------------------------------------------------
# Servers


@dataclass
class Seen:
    """What the server received (to check what the probe sends)."""

    requests: list[dict[str, Any]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    """``GET /status/NNN`` answers NNN; anything else 200."""

    protocol_version = "HTTP/1.1"
    seen: Seen

    def do_GET(self) -> None:
        self.seen.requests.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path.removeprefix("/status/"))
        body = b"hello"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class Server:
    port: int
    seen: Seen


def _serve(tls: ssl.SSLContext | None) -> Iterator[Server]:
    seen = Seen()
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(server.server_address[1], seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def http_server() -> Iterator[Server]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def https_server(ca: trustme.CA) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    yield from _serve(context)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port with nothing listening (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------------------------
# Helpers


def context(tmp_path: Path) -> SamplerContext:
    return SamplerContext(
        state_dir=tmp_path,
        spool_stats=lambda: None,  # type: ignore[arg-type,return-value]
        sampler_stats=lambda: {},
        recall=lambda _key: None,
    )


def wire_valid(event: Event) -> dict[str, Any]:
    """The event after the agent's JSON encoding, validated by the collector's schema."""
    decoded: dict[str, Any] = json.loads(dumps(event))
    EVENT.validate_python(decoded)
    return decoded


def probe_once(tmp_path: Path, **target: Any) -> dict[str, Any]:
    sampler = ProbeSampler()
    sampler.configure({"targets": [{"name": "App", **target}]})
    events = sampler.collect(context(tmp_path))
    assert len(events) == 1
    return wire_valid(events[0])


# ---------------------------------------------------------------------------------------
# Probing


def test_registered_with_defaults() -> None:
    assert REGISTRY["probe"] is ProbeSampler
    assert ProbeSampler.interval_s == 300.0
    assert ProbeSampler().collect(context(Path("."))) == []  # no targets: nothing to do


def test_http_ok(tmp_path: Path, http_server: Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/health?token=secret"
    event = probe_once(tmp_path, url=url)
    assert event["type"] == "probe"
    assert event["target"] == "App"
    assert event["ok"] is True
    assert event["http_status"] == 200
    assert "error" not in event and "tls_s" not in event
    for key in ("dns_s", "tcp_s", "ttfb_s", "total_s"):
        assert event[key] >= 0
    assert event["total_s"] >= event["ttfb_s"]
    assert event["total_s"] >= event["dns_s"] + event["tcp_s"]
    assert "secret" not in dumps(event)  # the URL (and its token) never leaves the device
    (request,) = http_server.seen.requests
    assert request["path"] == "/health?token=secret"
    headers = request["headers"]
    assert headers["host"] == f"127.0.0.1:{http_server.port}"
    assert headers["user-agent"] == f"DexScope-probe/{__version__}"
    assert headers["connection"] == "close"
    assert "cookie" not in headers and "authorization" not in headers


def test_http_status_outside_expectation(tmp_path: Path, http_server: Server) -> None:
    event = probe_once(tmp_path, url=f"http://127.0.0.1:{http_server.port}/status/503")
    assert event["ok"] is False
    assert event["http_status"] == 503
    assert event["error"] == "http: status 503"
    assert event["ttfb_s"] >= 0


def test_expect_status_overrides_default(tmp_path: Path, http_server: Server) -> None:
    base = f"http://127.0.0.1:{http_server.port}"
    assert probe_once(tmp_path, url=f"{base}/status/404", expect_status=[404])["ok"] is True
    event = probe_once(tmp_path, url=f"{base}/", expect_status=[204])
    assert event["ok"] is False and event["error"] == "http: status 200"


def test_https_with_ca_file(tmp_path: Path, https_server: Server, ca_file: Path) -> None:
    url = f"https://localhost:{https_server.port}/"
    event = probe_once(tmp_path, url=url, ca_file=str(ca_file))
    assert event["ok"] is True, event
    assert event["http_status"] == 200
    for key in ("dns_s", "tcp_s", "tls_s", "ttfb_s", "total_s"):
        assert event[key] >= 0
    assert event["total_s"] >= event["ttfb_s"]
    assert https_server.seen.requests[0]["headers"]["host"] == f"localhost:{https_server.port}"


def test_https_without_the_ca_fails_verification(tmp_path: Path, https_server: Server) -> None:
    event = probe_once(tmp_path, url=f"https://localhost:{https_server.port}/")
    assert event["ok"] is False
    assert event["error"].startswith("tls: certificate verify failed")
    assert "tls_s" not in event and "http_status" not in event
    assert event["tcp_s"] >= 0 and event["dns_s"] >= 0  # the phases reached are reported
    assert https_server.seen.requests == []


def test_https_host_name_mismatch(tmp_path: Path, https_server: Server, ca_file: Path) -> None:
    # The certificate is for "localhost"; 127.0.0.1 is not in it.
    url = f"https://127.0.0.1:{https_server.port}/"
    event = probe_once(tmp_path, url=url, ca_file=str(ca_file))
    assert event["ok"] is False
    assert event["error"].startswith("tls: certificate verify failed")


def test_connection_refused(tmp_path: Path, closed_port: int) -> None:
    event = probe_once(tmp_path, url=f"http://127.0.0.1:{closed_port}/")
    assert event["ok"] is False
    assert event["error"] == "tcp: connection refused"
    assert event["dns_s"] >= 0
    assert "tcp_s" not in event and "http_status" not in event


def test_dns_failure(tmp_path: Path) -> None:
    event = probe_once(tmp_path, url="https://nonexistent.invalid/", timeout_s=5)
    assert event["ok"] is False
    assert event["error"].startswith("dns: ")
    assert "dns_s" not in event and "tcp_s" not in event
    assert event["total_s"] >= 0


@pytest.mark.timeout(15)
def test_server_that_never_answers_times_out(tmp_path: Path, silent_port: int) -> None:
    started = time.monotonic()
    event = probe_once(tmp_path, url=f"http://127.0.0.1:{silent_port}/", timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert event["ok"] is False
    assert event["error"] == "timeout after 0.5 s waiting for first byte"
    assert event["tcp_s"] >= 0 and "ttfb_s" not in event
    assert elapsed < 5  # bounded by the target's timeout, not by the server


@pytest.mark.timeout(15)
def test_due_targets_are_probed_concurrently(
    tmp_path: Path, silent_port: int, http_server: Server
) -> None:
    sampler = ProbeSampler()
    silent = f"http://127.0.0.1:{silent_port}/"
    targets = [{"name": f"Silent {i}", "url": silent, "timeout_s": 1} for i in range(4)]
    targets.append({"name": "Fine", "url": f"http://127.0.0.1:{http_server.port}/"})
    sampler.configure({"targets": targets})
    started = time.monotonic()
    events = [wire_valid(e) for e in sampler.collect(context(tmp_path))]
    elapsed = time.monotonic() - started
    assert [e["target"] for e in events] == [t["name"] for t in targets]
    assert [e["ok"] for e in events] == [False] * 4 + [True]
    assert elapsed < 3.5  # four 1 s timeouts side by side, not one after the other


# ---------------------------------------------------------------------------------------
# Options


GOOD = {
    "jitter_s": 30,
    "targets": [
        {"name": "CRM", "url": "https://crm.example.com/health", "timeout_s": 10},
        {"name": "Wiki", "url": "http://wiki.corp:8080/", "expect_status": [200, 204]},
    ],
}


def test_valid_options_accepted(ca_file: Path) -> None:
    ProbeSampler.check_options(GOOD)
    ProbeSampler.check_options({})
    ProbeSampler.check_options(
        {"targets": [{"name": "A", "url": "https://a.example/", "ca_file": str(ca_file)}]}
    )
    targets, jitter = parse_options(GOOD)
    assert jitter == 30.0
    assert [t.name for t in targets] == ["CRM", "Wiki"]
    assert targets[0].expect_status is None and targets[0].timeout_s == 10.0
    assert targets[1].expect_status == frozenset({200, 204}) and targets[1].timeout_s == 10.0


def _target(**changes: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"name": "CRM", "url": "https://crm.example.com/"}
    target.update(changes)
    return {k: v for k, v in target.items() if v is not None}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"targets": [_target(url=None)]}, "targets[0].url: required"),
        ({"targets": [_target(name=None)]}, "targets[0].name: required"),
        (
            {"targets": [_target(), _target(name="B"), _target(name="C", url="ftp://x/")]},
            "targets[2].url: must start with http:// or https://",
        ),
        (
            {"targets": [_target(url="https://user:pw@crm.example.com/")]},
            "targets[0].url: must not carry credentials (user:password@)",
        ),
        ({"targets": [_target(url="https:///path")]}, "targets[0].url: has no host"),
        (
            {"targets": [_target(url="https://a.example/x y")]},
            "targets[0].url: must not contain spaces or control characters",
        ),
        (
            {"targets": [_target(), _target(url="http://other/")]},
            "targets[1].name: duplicate name 'CRM' (also targets[0])",
        ),
        (
            {"targets": [_target(name=f"T{i}") for i in range(MAX_TARGETS + 1)]},
            f"targets: at most {MAX_TARGETS} targets, not {MAX_TARGETS + 1}",
        ),
        (
            {"targets": [_target(timeout_s=0.1)]},
            "targets[0].timeout_s: must be between 0.5 and 60, not 0.1",
        ),
        (
            {"targets": [_target(timeout_s=61)]},
            "targets[0].timeout_s: must be between 0.5 and 60, not 61",
        ),
        ({"targets": [_target(timeout_s=True)]}, "targets[0].timeout_s: must be a number"),
        ({"targets": [_target(cookie="x")]}, "targets[0].cookie: unknown key"),
        ({"target": []}, "target: unknown key"),
        ({"targets": {"name": "CRM"}}, "targets: must be a list of tables"),
        ({"targets": ["https://crm.example.com/"]}, "targets[0]: must be a table"),
        ({"targets": [_target(name="")]}, "targets[0].name: must be a string of 1 to 256"),
        ({"targets": [_target(name="x" * 257)]}, "targets[0].name: must be a string of 1 to 256"),
        ({"targets": [_target(expect_status=[])]}, "targets[0].expect_status: must be a non-empty"),
        (
            {"targets": [_target(expect_status=[200, 700])]},
            "targets[0].expect_status: 700 is not an HTTP status",
        ),
        (
            {"targets": [_target(ca_file="/nonexistent/ca.pem")]},
            "targets[0].ca_file: /nonexistent/ca.pem is not a readable file",
        ),
        (
            {"targets": [_target(url="http://crm/", ca_file="/etc/hosts")]},
            "targets[0].ca_file: only applies to https:// URLs",
        ),
        ({"jitter_s": -1}, "jitter_s: must be between 0 and 86400"),
    ],
)
def test_bad_options_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ProbeSampler.check_options(options)
    assert str(caught.value).startswith(message), str(caught.value)


def _layers(tmp_path: Path, toml: str) -> ConfigLayers:
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    return ConfigLayers.load(
        flags={"state_dir": str(tmp_path)},
        config_file=path,
        environ={},
        known_samplers=frozenset(load_builtin_samplers()) | {"probe"},
    )


def test_bad_options_through_the_configuration(tmp_path: Path) -> None:
    toml = '[samplers.probe]\nenabled = true\ntargets = [{name = "CRM", url = "ftp://crm/"}]\n'
    with pytest.raises(AgentConfigError) as caught:
        _layers(tmp_path, toml).build()
    assert str(caught.value) == (
        "samplers.probe.targets[0].url: must start with http:// or https://"
    )


def test_good_options_through_the_configuration(tmp_path: Path, http_server: Server) -> None:
    toml = (
        "[samplers.probe]\nenabled = true\ninterval_s = 60\njitter_s = 0\n"
        f'targets = [{{name = "Local", url = "http://127.0.0.1:{http_server.port}/"}}]\n'
    )
    config = _layers(tmp_path, toml).build()
    settings = config.samplers["probe"]
    assert settings.enabled and settings.interval_s == 60.0
    (sampler,) = build_samplers(REGISTRY, {"probe": settings})
    (event,) = sampler.collect(context(tmp_path))
    assert wire_valid(event)["ok"] is True


# ---------------------------------------------------------------------------------------
# Jitter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_jitter_spreads_targets_and_skips_those_not_due(
    tmp_path: Path, http_server: Server
) -> None:
    clock = FakeClock()
    sampler = ProbeSampler(clock=clock, rng=random.Random(7))
    url = f"http://127.0.0.1:{http_server.port}/"
    names = [f"T{i}" for i in range(6)]
    sampler.configure({"jitter_s": 100, "targets": [{"name": n, "url": url} for n in names]})
    due = sampler.next_due()
    assert set(due) == set(names)
    assert all(1000.0 <= t <= 1100.0 for t in due.values())
    assert len(set(due.values())) == len(names)  # spread, not in lockstep
    assert max(due.values()) - min(due.values()) > 20

    assert min(due.values()) > 1000.0  # (this seed) none is due yet: nothing is probed
    assert sampler.collect(context(tmp_path)) == []
    assert http_server.seen.requests == []
    middle = sorted(due.values())[2]
    clock.now = middle
    events = [wire_valid(e) for e in sampler.collect(context(tmp_path))]
    expected = {n for n, t in due.items() if t <= middle}
    assert {e["target"] for e in events} == expected
    assert len(expected) == 3
    assert len(http_server.seen.requests) == 3  # the others were not probed at all

    clock.now = 1100.0
    events = [wire_valid(e) for e in sampler.collect(context(tmp_path))]
    assert {e["target"] for e in events} == set(names)  # the rest, and the probed ones again


def test_reconfiguring_keeps_due_times_of_kept_targets() -> None:
    clock = FakeClock()
    sampler = ProbeSampler(clock=clock, rng=random.Random(1))
    targets = [{"name": "A", "url": "http://a/"}, {"name": "B", "url": "http://b/"}]
    sampler.configure({"jitter_s": 50, "targets": targets})
    before = sampler.next_due()
    clock.now += 10
    sampler.configure({"jitter_s": 50, "targets": [targets[0], {"name": "C", "url": "http://c/"}]})
    after = sampler.next_due()
    assert set(after) == {"A", "C"}
    assert after["A"] == before["A"]
    assert 1010.0 <= after["C"] <= 1060.0


def test_no_jitter_probes_everything_at_once() -> None:
    clock = FakeClock()
    sampler = ProbeSampler(clock=clock, rng=random.Random(1))
    sampler.configure({"targets": [{"name": "A", "url": "http://a/"}]})
    assert sampler.next_due() == {"A": 1000.0}
