"""``probe``: synthetic checks of business web applications, timed phase by phase.

Each configured target is fetched with one minimal ``GET`` over a fresh connection, using
only the standard library (``socket``, ``ssl``) so that every phase is timed on its own:

- ``dns_s``: name resolution (``socket.getaddrinfo``);
- ``tcp_s``: the TCP connect (every resolved address in turn, like a browser);
- ``tls_s``: the TLS handshake (``https://`` only; verification always on, SNI and host name
  check on; ``ca_file`` replaces the system trust store for that target);
- ``ttfb_s``: from sending the request to the first byte of the response (server time plus
  one round trip);
- ``total_s``: the whole probe, from resolution to the end of the response headers (the body
  is never read).

One deadline (the target's ``timeout_s``) bounds the whole probe, resolution included. A
failing target is data, not a sampler failure: its event has ``ok`` false, a short ``error``
(``"tcp: connection refused"``, ``"http: status 503"``, ...) and the phases it reached;
:meth:`ProbeSampler.collect` never raises for it.

Privacy: the event names the target by its configured ``name``, never by its URL (URLs may
carry tokens); the probe sends no cookie and no credentials (URLs with ``user:password@``
are refused by :meth:`ProbeSampler.check_options`).

Configuration (``[samplers.probe]``, off by default)::

    [samplers.probe]
    enabled = true
    interval_s = 300
    jitter_s = 60
    targets = [
      {name = "CRM", url = "https://crm.example.com/health", timeout_s = 10},
      {name = "Wiki", url = "https://wiki.corp/", expect_status = [200], ca_file = "/ca.pem"},
    ]
"""

from __future__ import annotations

import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.samplers import Sampler, SamplerContext, event_base, register
from dexscope import __version__
from dexscope.wire import Event, ProbeEvent

__all__ = [
    "MAX_TARGETS",
    "ProbeResult",
    "ProbeSampler",
    "ProbeTarget",
    "parse_options",
    "run_probe",
    "to_event",
]

MAX_TARGETS = 20
"""At most this many targets per device (each probe is a real request to a business app)."""
_MAX_HEADER_BYTES = 64 * 1024
"""The response is read (and discarded) up to the end of its headers, at most this much."""
_MIN_TIMEOUT_S = 0.5
_MAX_TIMEOUT_S = 60.0
_DEFAULT_TIMEOUT_S = 10.0
_MAX_JITTER_S = 86400.0
"""The configuration's bound on a sampler interval (jitter beyond it makes no sense)."""
_MAX_ERROR_CHARS = 500
_TARGET_KEYS = frozenset({"name", "url", "timeout_s", "expect_status", "ca_file"})
_OPTION_KEYS = frozenset({"targets", "jitter_s"})
_USER_AGENT = f"DexScope-probe/{__version__}"


@dataclass(frozen=True)
class ProbeTarget:
    """One configured target: a display ``name`` (what events carry) and the URL to fetch."""

    name: str
    url: str
    timeout_s: float = _DEFAULT_TIMEOUT_S
    expect_status: frozenset[int] | None = None
    """Statuses that count as success; None means any 200-399."""
    ca_file: str | None = None
    """A PEM bundle trusted instead of the system store (verification stays on)."""

    def accepts(self, status: int) -> bool:
        """Whether ``status`` counts as success for this target."""
        if self.expect_status is None:
            return 200 <= status <= 399
        return status in self.expect_status


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe: success, the phases reached (seconds), status and error."""

    ok: bool
    total_s: float
    dns_s: float | None = None
    tcp_s: float | None = None
    tls_s: float | None = None
    ttfb_s: float | None = None
    http_status: int | None = None
    error: str | None = None


# ---------------------------------------------------------------------------------------
# Options


def _number(where: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: must be a number, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}: must be between {lo:g} and {hi:g}, not {value!r}")
    return float(value)


def _check_url(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: must be a non-empty string")
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError(f"{where}: must start with http:// or https://")
    if not value.isascii():
        raise ValueError(f"{where}: must be ASCII (percent-encode other characters)")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{where}: must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{where}: must not carry credentials (user:password@)")
    if not parts.hostname:
        raise ValueError(f"{where}: has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{where}: has an invalid port") from None
    return value


def _target(where: str, raw: Any) -> ProbeTarget:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be a table like {{name = ..., url = ...}}")
    unknown = sorted(set(raw) - _TARGET_KEYS)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key")
    for key in ("name", "url"):
        if key not in raw:
            raise ValueError(f"{where}.{key}: required")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise ValueError(f"{where}.name: must be a string of 1 to 256 characters")
    url = _check_url(f"{where}.url", raw["url"])
    timeout = _number(
        f"{where}.timeout_s",
        raw.get("timeout_s", _DEFAULT_TIMEOUT_S),
        _MIN_TIMEOUT_S,
        _MAX_TIMEOUT_S,
    )
    expect: frozenset[int] | None = None
    if "expect_status" in raw:
        statuses = raw["expect_status"]
        if not isinstance(statuses, list) or not statuses:
            raise ValueError(f"{where}.expect_status: must be a non-empty list of HTTP statuses")
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(
                    f"{where}.expect_status: {status!r} is not an HTTP status (100 to 599)"
                )
        expect = frozenset(statuses)
    ca_file: str | None = None
    if "ca_file" in raw:
        ca = raw["ca_file"]
        if not isinstance(ca, str) or not ca.strip():
            raise ValueError(f"{where}.ca_file: must be a non-empty string")
        if not url.lower().startswith("https://"):
            raise ValueError(f"{where}.ca_file: only applies to https:// URLs")
        if not Path(ca).expanduser().is_file():
            raise ValueError(f"{where}.ca_file: {ca} is not a readable file")
        ca_file = str(Path(ca).expanduser())
    return ProbeTarget(name=name, url=url, timeout_s=timeout, expect_status=expect, ca_file=ca_file)


def parse_options(options: Mapping[str, Any]) -> tuple[list[ProbeTarget], float]:
    """The targets and ``jitter_s`` of a ``[samplers.probe]`` table, validated.

    Raises ``ValueError`` whose message starts with the offending key, e.g.
    ``targets[2].url: must start with http:// or https://`` (the configuration prefixes
    ``samplers.probe.``).
    """
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key")
    jitter = _number("jitter_s", options.get("jitter_s", 0.0), 0.0, _MAX_JITTER_S)
    raw_targets = options.get("targets", [])
    if not isinstance(raw_targets, list):
        raise ValueError("targets: must be a list of tables (an array of {name, url} tables)")
    if len(raw_targets) > MAX_TARGETS:
        raise ValueError(f"targets: at most {MAX_TARGETS} targets, not {len(raw_targets)}")
    targets: list[ProbeTarget] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_targets):
        target = _target(f"targets[{index}]", raw)
        if target.name in seen:
            raise ValueError(
                f"targets[{index}].name: duplicate name {target.name!r} "
                f"(also targets[{seen[target.name]}])"
            )
        seen[target.name] = index
        targets.append(target)
    return targets, jitter


# ---------------------------------------------------------------------------------------
# One probe


class _Failure(Exception):
    """Ends a probe early with the error text of the phase that failed."""

    def __init__(self, error: str, http_status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.http_status = http_status


def _seconds(value: float) -> float:
    return round(max(0.0, value), 6)


def _resolve(host: str, port: int, timeout_s: float) -> list[Any]:
    """``getaddrinfo`` bounded by ``timeout_s`` (it has no timeout of its own).

    The lookup runs in a daemon thread; when the deadline passes first, the thread is left
    to finish on its own (the resolver's own timeout ends it) and the probe reports a timeout.
    """
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # reported by the caller; a thread must not raise
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name="dexscope-probe-dns", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise TimeoutError
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return list(result)


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ConnectionAbortedError):
        return "connection aborted"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


class _Probe:
    """The state of one probe in flight: the deadline, the phases so far, the socket."""

    def __init__(self, target: ProbeTarget, clock: Callable[[], float]) -> None:
        self.target = target
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + target.timeout_s
        self.phases: dict[str, float] = {}
        self.http_status: int | None = None

    def remaining(self, waiting_for: str) -> float:
        left = self.deadline - self.clock()
        if left <= 0:
            raise _Failure(self.timeout_text(waiting_for), self.http_status)
        return left

    def timeout_text(self, waiting_for: str) -> str:
        return f"timeout after {float(self.target.timeout_s)} s {waiting_for}"

    def run(self) -> None:
        parts = urlsplit(self.target.url)
        secure = parts.scheme.lower() == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        addresses = self._dns(host, port)
        sock = self._tcp(addresses)
        try:
            if secure:
                sock = self._tls(sock, host)
            self._http(sock, parts, host, port, secure)
        finally:
            sock.close()

    def _dns(self, host: str, port: int) -> list[Any]:
        begin = self.clock()
        try:
            addresses = _resolve(host, port, self.remaining("resolving the host"))
        except TimeoutError:
            raise _Failure(self.timeout_text("resolving the host")) from None
        except socket.gaierror as exc:
            raise _Failure(f"dns: {exc.strerror or exc}") from None
        except (OSError, UnicodeError) as exc:
            raise _Failure(f"dns: {exc}") from None
        self.phases["dns_s"] = self.clock() - begin
        if not addresses:
            raise _Failure("dns: no address")
        return addresses

    def _tcp(self, addresses: Sequence[Any]) -> socket.socket:
        begin = self.clock()
        last: OSError | None = None
        for family, kind, proto, _canonical, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.remaining("connecting"))
                sock.connect(address)
            except TimeoutError:
                sock.close()
                raise _Failure(self.timeout_text("connecting")) from None
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            self.phases["tcp_s"] = self.clock() - begin
            return sock
        assert last is not None  # at least one address was tried
        raise _Failure(f"tcp: {_os_error_text(last)}")

    def _tls(self, sock: socket.socket, host: str) -> ssl.SSLSocket:
        try:
            context = ssl.create_default_context(cafile=self.target.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise _Failure(f"tls: cannot load ca_file: {_os_error_text(exc)}") from None
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        begin = self.clock()
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        try:
            tls.settimeout(self.remaining("during the TLS handshake"))
            tls.do_handshake()
        except ssl.SSLCertVerificationError as exc:
            tls.close()
            detail = exc.verify_message or exc.reason or str(exc)
            raise _Failure(f"tls: certificate verify failed: {detail}") from None
        except ssl.SSLError as exc:
            tls.close()
            raise _Failure(f"tls: {exc.reason or exc}") from None
        except TimeoutError:
            tls.close()
            raise _Failure(self.timeout_text("during the TLS handshake")) from None
        except OSError as exc:
            tls.close()
            raise _Failure(f"tls: {_os_error_text(exc)}") from None
        except BaseException:
            tls.close()
            raise
        self.phases["tls_s"] = self.clock() - begin
        return tls

    def _http(self, sock: socket.socket, parts: Any, host: str, port: int, secure: bool) -> None:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = f"[{host}]" if ":" in host else host
        if port != (443 if secure else 80):
            host_header += f":{port}"
        request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            f"User-Agent: {_USER_AGENT}\r\n"
            "Accept: */*\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii", "strict")
        sent = self.clock()
        try:
            sock.settimeout(self.remaining("sending the request"))
            sock.sendall(request)
        except TimeoutError:
            raise _Failure(self.timeout_text("sending the request")) from None
        except OSError as exc:
            raise _Failure(f"http: sending the request: {_os_error_text(exc)}") from None
        buffer = b""
        waiting = "waiting for first byte"
        while True:
            try:
                sock.settimeout(self.remaining(waiting))
                chunk = sock.recv(min(16384, _MAX_HEADER_BYTES - len(buffer)))
            except TimeoutError:
                raise _Failure(self.timeout_text(waiting), self.http_status) from None
            except OSError as exc:
                raise _Failure(f"http: {_os_error_text(exc)}", self.http_status) from None
            if not chunk:
                if not buffer:
                    raise _Failure("http: connection closed before any response")
                if self.http_status is None:
                    raise _Failure("http: connection closed inside the status line")
                raise _Failure("http: connection closed inside the headers", self.http_status)
            if not buffer:
                self.phases["ttfb_s"] = self.clock() - sent
                waiting = "reading the response headers"
            buffer += chunk
            if self.http_status is None and b"\r\n" in buffer:
                self.http_status = _status(buffer.split(b"\r\n", 1)[0])
            if self.http_status is not None and b"\r\n\r\n" in buffer:
                return
            if len(buffer) >= _MAX_HEADER_BYTES:
                if self.http_status is None:
                    raise _Failure("http: malformed status line")
                raise _Failure("http: response headers exceed 64 KiB", self.http_status)


def _status(line: bytes) -> int:
    """The status code of an HTTP/1.x status line (``_Failure`` when it is not one)."""
    fields = line.split(b" ", 2)
    if (
        len(fields) >= 2
        and fields[0].startswith(b"HTTP/1.")
        and len(fields[1]) == 3
        and fields[1].isdigit()
        and 100 <= int(fields[1]) <= 599
    ):
        return int(fields[1])
    raise _Failure("http: malformed status line")


def run_probe(
    target: ProbeTarget, *, clock: Callable[[], float] = time.perf_counter
) -> ProbeResult:
    """Probe ``target`` once, within its ``timeout_s``; never raises for a failing target.

    ``ok`` is true when the response status is one ``target`` accepts; otherwise ``error``
    names the phase that failed and the phases reached before it are still reported.
    """
    probe = _Probe(target, clock)
    error: str | None = None
    try:
        probe.run()
    except _Failure as exc:
        error = exc.error
        probe.http_status = exc.http_status
    except Exception as exc:  # a probe must never take the sampler down
        error = f"probe: {type(exc).__name__}: {exc}"
    status = probe.http_status
    if error is None and status is not None and not target.accepts(status):
        error = f"http: status {status}"
    total = clock() - probe.started
    return ProbeResult(
        ok=error is None and status is not None,
        total_s=_seconds(total),
        dns_s=_phase(probe.phases, "dns_s"),
        tcp_s=_phase(probe.phases, "tcp_s"),
        tls_s=_phase(probe.phases, "tls_s"),
        ttfb_s=_phase(probe.phases, "ttfb_s"),
        http_status=status,
        error=None if error is None else error[:_MAX_ERROR_CHARS],
    )


def _phase(phases: Mapping[str, float], key: str) -> float | None:
    value = phases.get(key)
    return None if value is None else _seconds(value)


# ---------------------------------------------------------------------------------------
# The sampler


@register
class ProbeSampler(Sampler):
    """Probes the configured business web apps that are due; one ``probe`` event each.

    Jitter without blocking: each target has its own "next due" time on the instance. A
    target seen for the first time (agent start, or a configuration that adds it) is due at
    a random moment ``0..jitter_s`` from now, so a fleet that starts or receives a new
    configuration together does not hit an application in lockstep. ``collect`` probes only
    the targets that are due; a probed target is due again at the next run (the scheduler
    spaces runs by the interval, with its own random offset). ``collect`` never sleeps to
    wait for a due time (that would hold up every other sampler): a target not yet due waits
    for a later run, so the delay takes effect with the granularity of the sampler's
    interval.

    Due targets are probed concurrently (one short-lived thread each, at most
    :data:`MAX_TARGETS`), so a run lasts about the longest due target's ``timeout_s``
    (60 s at most) instead of the sum of them.
    """

    name = "probe"
    interval_s = 300.0

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._targets: list[ProbeTarget] = []
        self._jitter_s = 0.0
        self._next_due: dict[str, float] = {}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Validate ``targets`` and ``jitter_s`` (see :func:`parse_options`)."""
        parse_options(options)

    def configure(self, options: Mapping[str, Any]) -> None:
        """Apply new targets; kept targets (same name) keep their due time, new ones get one."""
        targets, jitter = parse_options(options)
        self._targets = targets
        self._jitter_s = jitter
        now = self._clock()
        self._next_due = {t.name: self._next_due.get(t.name, now + self._delay()) for t in targets}

    def next_due(self) -> Mapping[str, float]:
        """Each target's next due time on the injected clock (for tests and diagnostics)."""
        return dict(self._next_due)

    def _delay(self) -> float:
        return self._rng.uniform(0.0, self._jitter_s) if self._jitter_s > 0 else 0.0

    def collect(self, ctx: SamplerContext) -> list[Event]:
        """One ``probe`` event per due target (failing targets included, never an exception)."""
        now = self._clock()
        due = [t for t in self._targets if self._next_due.get(t.name, now) <= now]
        if not due:
            return []
        if len(due) == 1:
            results = [self._probe(due[0])]
        else:
            with ThreadPoolExecutor(len(due), thread_name_prefix="dexscope-probe") as pool:
                results = list(pool.map(self._probe, due))
        for target in due:
            self._next_due[target.name] = now  # due again at the next run
        return list(results)

    @staticmethod
    def _probe(target: ProbeTarget) -> ProbeEvent:
        ts = datetime.now(UTC)
        return to_event(target, run_probe(target), ts)


def to_event(target: ProbeTarget, result: ProbeResult, ts: datetime) -> ProbeEvent:
    """The wire event of one probe: named by ``target.name`` (never the URL)."""
    event: ProbeEvent = {
        **event_base(ts),  # type: ignore[typeddict-item]
        "type": "probe",
        "target": target.name,
        "ok": result.ok,
        "total_s": result.total_s,
    }
    if result.dns_s is not None:
        event["dns_s"] = result.dns_s
    if result.tcp_s is not None:
        event["tcp_s"] = result.tcp_s
    if result.tls_s is not None:
        event["tls_s"] = result.tls_s
    if result.ttfb_s is not None:
        event["ttfb_s"] = result.ttfb_s
    if result.http_status is not None:
        event["http_status"] = result.http_status
    if result.error is not None:
        event["error"] = result.error
    return event
