"""``dexscope agent run`` and ``dexscope agent status``."""

from __future__ import annotations

import json
import logging
import signal
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
from agent.spool import Spool
from agent.state import Identity, ensure_state_dir, load_identity, save_identity
from agent.uploader import Retry, Uploader

__all__ = ["AgentRuntime", "agent_status", "print_status", "run_agent"]

log = logging.getLogger("dexscope.agent")


def _client(config: AgentConfig) -> httpx.Client:
    timeout = httpx.Timeout(config.upload.timeout_s, connect=min(5.0, config.upload.timeout_s))
    verify: Any = str(config.ca_bundle) if config.ca_bundle else True
    return httpx.Client(timeout=timeout, verify=verify, headers={"User-Agent": "dexscope-agent"})


def _fetch_server_config(
    client: httpx.Client, identity: Identity, server_url: str
) -> dict[str, Any] | None:
    try:
        response = client.get(
            f"{server_url}/api/v1/agent/config",
            headers={"Authorization": f"Bearer {identity.device_token}"},
        )
    except httpx.HTTPError as exc:
        log.warning("cannot fetch configuration from %s: %s", server_url, type(exc).__name__)
        return None
    if response.status_code != 200:
        log.warning("configuration refused: %s", server_error_message(response))
        return None
    body = response.json()
    return body if isinstance(body, dict) else None


class AgentRuntime:
    """An enrolled agent's moving parts: config, spool, samplers, uploader."""

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
        self.context = SamplerContext(config.state_dir, self.spool.stats, self.runner.take_stats)
        self.apply(config)

    def apply(self, config: AgentConfig) -> None:
        """Switch to a new validated configuration (rebuilds samplers and uploader)."""
        self.config = config
        self.samplers = build_samplers(self.registry, config.samplers, self.context)
        self.scheduler = Scheduler(
            self.samplers, {name: s.interval_s for name, s in config.samplers.items()}
        )
        self.uploader = Uploader(
            self.identity, self.server_url, self.spool, config.upload, self.client
        )

    def refresh_config(self) -> None:
        """Fetch the collector's configuration; apply it if valid and different."""
        server = _fetch_server_config(self.client, self.identity, self.server_url)
        if server is None:
            return
        try:
            new = self.layers.build(server)
        except AgentConfigError as exc:
            log.error("collector sent an invalid configuration, keeping the current one: %s", exc)
            return
        if new != self.config:
            log.info("applying configuration version %s", new.server_config_version)
            uploader_backoff = self.uploader.backoff
            self.apply(new)
            self.uploader.backoff = uploader_backoff

    def sample(self, only_due: bool) -> int:
        """Run the due (or all enabled) samplers and spool what they produce."""
        samplers = self.scheduler.due() if only_due else self.samplers
        events = []
        for sampler in samplers:
            events.extend(self.runner.run(sampler))
        return self.spool.append(events)


def _enrolled(
    layers: ConfigLayers, config: AgentConfig, client: httpx.Client
) -> tuple[Identity, dict[str, Any] | None]:
    ensure_state_dir(config.state_dir)
    identity = load_identity(config.state_dir)
    if identity is not None:
        if config.server_url and config.server_url != identity.server_url:
            log.warning(
                "enrolled with %s; now reporting to %s", identity.server_url, config.server_url
            )
        return identity, None
    identity, server_config = enroll(config, client)
    save_identity(config.state_dir, identity)
    log.info("enrolled as device %s", identity.device_id)
    return identity, server_config


def run_agent(flags: Mapping[str, Any], config_file: Path | None, *, once: bool) -> int:
    """Enroll if needed, then sample and upload (one round with ``once``)."""
    registry = load_builtin_samplers()
    layers = ConfigLayers.load(
        flags=flags,
        config_file=config_file,
        environ=default_environ(),
        known_samplers=frozenset(registry),
    )
    config = layers.build()
    with _client(config) as client:
        identity, server_config = _enrolled(layers, config, client)
        runtime = AgentRuntime(layers, config, identity, client)
        if server_config:
            try:
                runtime.apply(layers.build(server_config))
            except AgentConfigError as exc:
                log.error("ignoring the collector's configuration: %s", exc)
        else:
            runtime.refresh_config()
        try:
            if once:
                return _run_once(runtime)
            return _run_forever(runtime)
        finally:
            runtime.spool.close()


def _run_once(runtime: AgentRuntime) -> int:
    runtime.sample(only_due=False)
    sent, failure = runtime.uploader.drain()
    if isinstance(failure, Retry):
        print(
            f"warning: {failure.reason}; data kept in the spool for the next run", file=sys.stderr
        )
    log.info("sent %d batch(es)", sent)
    return 0


def _run_forever(runtime: AgentRuntime) -> int:
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    def _upload_loop() -> None:
        # Reads runtime.uploader on every pass, so a configuration change takes effect.
        while not stop.is_set():
            try:
                delay = runtime.uploader.step()
            except Exception:
                log.exception("upload pass failed")
                delay = 5.0
            stop.wait(delay)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    uploader = threading.Thread(target=_upload_loop, name="uploader", daemon=True)
    uploader.start()
    next_refresh = time.monotonic() + runtime.config.config_refresh_s
    while not stop.is_set():
        try:
            runtime.sample(only_due=True)
        except Exception:  # e.g. disk full: keep running; the error is in the log and health
            log.exception("sampling round failed")
        if time.monotonic() >= next_refresh:
            runtime.refresh_config()
            next_refresh = time.monotonic() + runtime.config.config_refresh_s
        stop.wait(min(runtime.scheduler.next_in_s(), 1.0))
    uploader.join(timeout=runtime.config.upload.timeout_s + 5)
    return 0


def agent_status(state_dir: Path) -> dict[str, Any]:
    """What ``agent status`` shows: identity, spool depth, counters, last upload and error."""
    identity = load_identity(state_dir)
    if identity is None:
        raise NotEnrolled(f"{state_dir} holds no enrolled agent (run `dexscope agent run` first)")
    spool_path = state_dir / "spool.db"
    status: dict[str, Any] = {"device_id": identity.device_id, "server": identity.server_url}
    if spool_path.exists():
        spool = Spool(spool_path)
        try:
            stats = spool.stats()
        finally:
            spool.close()
        status.update(
            spool_events=stats.events,
            spool_bytes=stats.bytes,
            **stats.counters,
            last_upload_at=stats.last_upload_at,
            last_error=stats.last_error,
            last_error_at=stats.last_error_at,
        )
    return status


def print_status(state_dir: Path, as_json: bool) -> None:
    """Print the status for a person or a script."""
    status = agent_status(state_dir)
    if as_json:
        print(json.dumps(status))
        return
    for key, value in status.items():
        print(f"{key:24} {value if value is not None else '—'}")
