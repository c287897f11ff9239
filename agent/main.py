"""``dexscope agent run`` and ``dexscope agent status``: the agent's process.

``run``: build the configuration from its layers, enroll on first start (the identity is
saved; later starts reuse it and need no token), fetch the collector's configuration and
apply it, then loop: samplers on their intervals (monotonic scheduler) append to the spool in
the main thread while the uploader drains it in its own thread, which also re-fetches the
collector's configuration every ``config_refresh_s`` (the main thread applies it between
rounds). SIGTERM and SIGINT stop cleanly. ``--once``: one round of every enabled sampler,
then uploads until the spool is empty or the first failure.

``status``: read the identity and the spool (read-only; works while the agent runs).
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from agent.config import AgentConfig, ConfigLayers, default_environ
from agent.enroll import enroll, server_error_message
from agent.errors import AgentConfigError, NotEnrolled
from agent.runner import SamplerRunner, Scheduler, build_samplers
from agent.samplers import SamplerContext, load_builtin_samplers
from agent.spool import COUNTERS, Spool, SpoolStats, read_stats
from agent.state import Identity, ensure_state_dir, load_identity, save_identity
from agent.uploader import Uploader

__all__ = [
    "STATUS_KEYS",
    "AgentRuntime",
    "agent_status",
    "http_client",
    "print_status",
    "run_agent",
]

log = logging.getLogger("dexscope.agent")

STATUS_KEYS = (
    "device_id",
    "server",
    "enrolled_at",
    "spool_events",
    "spool_bytes",
    *COUNTERS,
    "last_upload_at",
    "last_error",
    "last_error_at",
)
"""The keys of ``dexscope agent status --json``, always all present (null when unknown)."""


def http_client(config: AgentConfig) -> httpx.Client:
    """The agent's HTTP client: explicit timeouts, TLS always verified (``ca_bundle`` or system)."""
    timeout = httpx.Timeout(config.upload.timeout_s, connect=min(5.0, config.upload.timeout_s))
    verify: Any = str(config.ca_bundle) if config.ca_bundle else True
    return httpx.Client(timeout=timeout, verify=verify, headers={"User-Agent": "dexscope-agent"})


class AgentRuntime:
    """An enrolled agent's moving parts: configuration, spool, samplers, uploader."""

    def __init__(
        self, layers: ConfigLayers, config: AgentConfig, identity: Identity, client: httpx.Client
    ) -> None:
        self.layers = layers
        self.identity = identity
        self.client = client
        self.server_url = config.server_url or identity.server_url
        self.spool = Spool(
            config.state_dir / "spool.db",
            max_bytes=config.spool.max_bytes,
            max_age_days=config.spool.max_age_days,
        )
        self.runner = SamplerRunner()
        self.registry = load_builtin_samplers()
        self.context = SamplerContext(
            config.state_dir, self.spool.stats, self.runner.take_stats, self.spool.mark
        )
        self.config = config
        self.samplers = build_samplers(self.registry, config.samplers)
        self.scheduler = Scheduler(self.samplers, _intervals(config))
        self.uploader = Uploader(identity, self.server_url, self.spool, config.upload, self.client)
        self._pending: AgentConfig | None = None
        self._pending_lock = threading.Lock()

    def apply(self, config: AgentConfig) -> None:
        """Switch to a new validated configuration (kept samplers keep their state)."""
        self.config = config
        self.samplers = build_samplers(self.registry, config.samplers, self.samplers)
        self.scheduler.update(self.samplers, _intervals(config))
        self.uploader.update_settings(config.upload)
        self.spool.max_bytes = config.spool.max_bytes
        self.spool.max_age_s = config.spool.max_age_days * 86400

    def fetch_config(self) -> AgentConfig | None:
        """The collector's configuration merged under the local layers, or None.

        None when it cannot be fetched (logged, recorded as the last error) or is invalid
        (logged; the current configuration stays).
        """
        try:
            response = self.client.get(
                f"{self.server_url}/api/v1/agent/config",
                headers={"Authorization": f"Bearer {self.identity.device_token}"},
            )
        except httpx.HTTPError as exc:
            error = f"cannot fetch configuration from {self.server_url}: {type(exc).__name__}"
            log.warning("%s", error)
            self.spool.note_error(error)
            return None
        if response.status_code != 200:
            error = (
                f"configuration refused: HTTP {response.status_code} "
                f"{server_error_message(response)}"
            )
            log.warning("%s", error)
            self.spool.note_error(error)
            return None
        try:
            server = response.json()
            if not isinstance(server, dict):
                raise AgentConfigError("collector configuration: not a JSON object")
            return self.layers.build(server)
        except (ValueError, AgentConfigError) as exc:
            log.error("keeping the current configuration: %s", exc)
            return None

    def refresh_config(self) -> None:
        """Fetch the collector's configuration and apply it now (main thread, start-up)."""
        new = self.fetch_config()
        if new is not None and new != self.config:
            log.info("applying configuration version %s", new.server_config_version)
            self.apply(new)

    def offer_config(self) -> None:
        """Fetch the configuration (uploader thread) for :meth:`apply_offered` to apply."""
        new = self.fetch_config()
        if new is not None:
            with self._pending_lock:
                self._pending = new

    def apply_offered(self) -> None:
        """Apply a configuration fetched by :meth:`offer_config`, if it changed anything."""
        with self._pending_lock:
            new, self._pending = self._pending, None
        if new is not None and new != self.config:
            log.info("applying configuration version %s", new.server_config_version)
            self.apply(new)

    def sample(self, only_due: bool) -> int:
        """Run the due (or all enabled) samplers and spool what they produce."""
        samplers = self.scheduler.due() if only_due else list(self.samplers)
        if not samplers:
            return 0
        return self.runner.round(samplers, self.context, self.spool)


def _intervals(config: AgentConfig) -> dict[str, float]:
    return {name: s.interval_s for name, s in config.samplers.items()}


def _identity(config: AgentConfig, client: httpx.Client) -> Identity:
    ensure_state_dir(config.state_dir)
    identity = load_identity(config.state_dir)
    if identity is not None:
        if config.server_url and config.server_url != identity.server_url:
            log.warning(
                "enrolled with %s; now reporting to %s", identity.server_url, config.server_url
            )
        return identity
    identity = enroll(config, client)
    save_identity(config.state_dir, identity)
    log.info("enrolled as device %s with %s", identity.device_id, identity.server_url)
    return identity


def run_agent(flags: Mapping[str, Any], config_file: Path | None, *, once: bool) -> int:
    """Enroll if needed, then sample and upload (one round with ``once``); the exit code.

    Raises :class:`agent.errors.EnrollmentRefused`, :class:`agent.errors.CollectorUnreachable`
    (first enrollment only) and :class:`agent.errors.AgentConfigError` for the caller to
    turn into a message and an exit code.
    """
    registry = load_builtin_samplers()
    layers = ConfigLayers.load(
        flags=flags,
        config_file=config_file,
        environ=default_environ(),
        known_samplers=frozenset(registry),
    )
    config = layers.build()
    with http_client(config) as client:
        identity = _identity(config, client)
        runtime = AgentRuntime(layers, config, identity, client)
        try:
            runtime.refresh_config()
            if once:
                return _run_once(runtime)
            return _run_forever(runtime)
        finally:
            runtime.spool.close()


def _run_once(runtime: AgentRuntime) -> int:
    appended = runtime.sample(only_due=False)
    sent, failure = runtime.uploader.drain()
    if failure is not None:
        print(
            f"warning: upload failed ({failure.reason}); "
            f"the data stays in the spool for the next run",
            file=sys.stderr,
        )
    log.info("sampled %d event(s), sent %d batch(es)", appended, sent)
    return 0


def _run_forever(runtime: AgentRuntime) -> int:
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    def _network_loop() -> None:
        # Everything that talks to the collector runs here, so a slow or hanging collector
        # never delays sampling.
        next_refresh = time.monotonic() + runtime.config.config_refresh_s
        while not stop.is_set():
            try:
                if time.monotonic() >= next_refresh:
                    runtime.offer_config()
                    next_refresh = time.monotonic() + runtime.config.config_refresh_s
                delay = runtime.uploader.step()
            except Exception as exc:  # logged on one line; the loop goes on
                log.error("upload pass failed: %s: %s", type(exc).__name__, exc)
                delay = 5.0
            stop.wait(delay)

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    network = threading.Thread(target=_network_loop, name="uploader", daemon=True)
    network.start()
    try:
        while not stop.is_set():
            try:
                runtime.apply_offered()
                runtime.sample(only_due=True)
            except Exception as exc:  # e.g. disk full: keep running; the log says why
                log.error("sampling round failed: %s: %s", type(exc).__name__, exc)
            stop.wait(min(runtime.scheduler.next_in_s(), 1.0))
    finally:
        stop.set()
        network.join(timeout=runtime.config.upload.timeout_s + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def _spool_stats(path: Path) -> SpoolStats | None:
    if not path.exists():
        return None
    try:
        return read_stats(path)
    except sqlite3.Error:  # e.g. no -shm yet on a read-only mount: a normal connection
        spool = Spool(path)
        try:
            return spool.stats()
        finally:
            spool.close()


def agent_status(state_dir: Path) -> dict[str, Any]:
    """What ``agent status`` shows (keys :data:`STATUS_KEYS`): identity, spool, counters."""
    identity = load_identity(state_dir)
    if identity is None:
        raise NotEnrolled(
            f"{state_dir} holds no enrolled agent (run `dexscope agent run` with this "
            f"--state-dir first)"
        )
    stats = _spool_stats(state_dir / "spool.db")
    status: dict[str, Any] = {
        "device_id": identity.device_id,
        "server": identity.server_url,
        "enrolled_at": identity.enrolled_at,
        "spool_events": stats.events if stats else 0,
        "spool_bytes": stats.bytes if stats else 0,
    }
    for key in COUNTERS:
        status[key] = stats.counters[key] if stats else 0
    status["last_upload_at"] = stats.last_upload_at if stats else None
    status["last_error"] = stats.last_error if stats else None
    status["last_error_at"] = stats.last_error_at if stats else None
    return status


def print_status(state_dir: Path, as_json: bool) -> None:
    """Print the status for a script (``--json``, one object) or a person (aligned lines)."""
    status = agent_status(state_dir)
    if as_json:
        print(json.dumps(status))
        return
    for key, value in status.items():
        print(f"{key:34} {value if value is not None else '-'}")
