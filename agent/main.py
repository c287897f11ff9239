"""``dexscope agent run`` and ``dexscope agent status``: the agent's process.

``run``: build the configuration from its layers, enroll on first start (the identity is
saved; later starts reuse it and need no token), fetch the collector's configuration and
apply it, then loop: samplers on their intervals (monotonic scheduler) append to the spool in
the main thread while the uploader drains it in its own thread, which also re-fetches the
collector's configuration every ``config_refresh_s`` (the main thread applies it between
rounds). SIGTERM and SIGINT stop cleanly, and so does setting the ``stop`` event given to
:func:`run_agent` (the Windows service's stop control,
:mod:`agent.platform.windows_service`). ``--once``: one round of every enabled sampler,
then uploads until the spool is empty or the first failure.

``status``: read the identity and the spool (read-only; works while the agent runs).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from agent import platform
from agent.config import AgentConfig, ConfigLayers, default_environ, insecure_server_url
from agent.enroll import enroll, server_error_message
from agent.errors import AgentConfigError, NotEnrolled
from agent.runner import SamplerRunner, Scheduler, build_samplers
from agent.samplers import SamplerContext, load_builtin_samplers
from agent.samplers.logsource import source_mark
from agent.spool import COUNTERS, Spool, SpoolStats, read_marks, read_stats
from agent.state import Identity, ensure_state_dir, load_identity, save_identity
from agent.uploader import Uploader
from agent.watchdog import PROFILES, Decision, Watchdog

__all__ = [
    "MAX_IDLE_S",
    "OPTIONAL_SAMPLERS",
    "RESTART_EXIT_CODE",
    "STATUS_KEYS",
    "THROTTLE_FACTOR",
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
    "collection",
)
"""The keys of ``dexscope agent status --json``, always all present (null when unknown).

``collection`` is what the agent collects: per enabled sampler its interval, its options
(secrets left out), the OS source it reads and, when a better source is missing, why."""

OPTIONAL_SAMPLERS = frozenset({"app_resource", "app_hang", "probe"})
"""Samplers the watchdog pauses while it throttles the agent."""
THROTTLE_FACTOR = 4.0
"""While throttled, every other sampler runs this many times less often."""
MAX_IDLE_S = 5.0
"""The sampling loop sleeps until the next sampler is due, at most this long (a signal
wakes it at once; configuration changes and the watchdog are looked at on waking)."""
RESTART_EXIT_CODE = 4
"""Exit code of a loop run with a ``stop`` event (the Windows service) that the watchdog
wants restarted: the process cannot re-execute itself under the service manager, whose
recovery actions restart it."""
_SECRET_OPTIONS = frozenset({"pseudonym_key"})
_SERVER_CONFIG_MARK = "server_config"


def http_client(config: AgentConfig) -> httpx.Client:
    """The agent's HTTP client: explicit timeouts, TLS always verified (``ca_bundle`` or system).

    A ``ca_bundle`` replaces the system's trust store (only its CAs are trusted).
    """
    timeout = httpx.Timeout(config.upload.timeout_s, connect=min(5.0, config.upload.timeout_s))
    verify: Any = (
        ssl.create_default_context(cafile=str(config.ca_bundle)) if config.ca_bundle else True
    )
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
            boot_id=platform.boot_id(),
        )
        self.runner = SamplerRunner()
        self.registry = load_builtin_samplers()
        self.context = SamplerContext(
            config.state_dir,
            self.spool.stats,
            self.runner.take_stats,
            self.spool.mark,
            spool_now=lambda events, marks: self.spool.append(events, marks=marks),
            survey_box=config.survey_box,
        )
        self.config = config
        self.samplers = build_samplers(self.registry, config.samplers)
        self.scheduler = Scheduler(self.samplers, _intervals(config))
        self.uploader = Uploader(identity, self.server_url, self.spool, config.upload, self.client)
        self._pending: AgentConfig | None = None
        self._pending_lock = threading.Lock()
        self.throttled = False
        self.context.agent_state["watchdog_restarts_total"] = int(
            self.spool.mark("watchdog.restarts") or 0
        )
        self._record_collection()

    def apply(self, config: AgentConfig) -> None:
        """Switch to a new validated configuration (kept samplers keep their state)."""
        self.config = config
        self.samplers = build_samplers(self.registry, config.samplers, self.samplers)
        self._reschedule()
        self.uploader.update_settings(config.upload)
        self.spool.max_bytes = config.spool.max_bytes
        self.spool.max_age_s = config.spool.max_age_days * 86400
        self._record_collection()

    def set_throttled(self, throttled: bool) -> None:
        """Throttle (stretch intervals, pause optional samplers) or lift the throttle."""
        self.throttled = throttled
        self.context.agent_state["throttled"] = throttled
        self._reschedule()

    def _reschedule(self) -> None:
        intervals = _intervals(self.config)
        samplers = self.samplers
        if self.throttled:
            samplers = [s for s in samplers if s.name not in OPTIONAL_SAMPLERS]
            intervals = {name: value * THROTTLE_FACTOR for name, value in intervals.items()}
        self.scheduler.update(samplers, intervals)

    def _record_collection(self) -> None:
        """Persist what is collected, for ``agent status`` (another process) to show."""
        collection = {
            name: {
                "interval_s": s.interval_s,
                **{k: v for k, v in s.options.items() if k not in _SECRET_OPTIONS},
            }
            for name, s in self.config.samplers.items()
            if s.enabled
        }
        from agent.samplers.survey import SURVEY_BOX  # loaded with the samplers already

        box = self.config.survey_box
        value = json.dumps(
            {
                "samplers": collection,
                "watchdog_profile": self.config.watchdog_profile,
                "survey_box": str(box or self.config.state_dir / SURVEY_BOX),
                "survey_box_shared": box is not None,
            },
            sort_keys=True,
        )
        if self.spool.mark("collection") != value:
            self.spool.append([], marks={"collection": value})

    def cached_server_config(self) -> AgentConfig | None:
        """The last collector configuration accepted (kept in the spool), for an offline
        start: sampling settings and the tenant's pseudonym key survive a restart."""
        raw = self.spool.mark(_SERVER_CONFIG_MARK)
        if not raw:
            return None
        try:
            server = json.loads(raw)
            return self.layers.build(server) if isinstance(server, dict) else None
        except (ValueError, AgentConfigError) as exc:
            log.warning("ignoring the cached collector configuration: %s", exc)
            return None

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
            built = self.layers.build(server)
        except (ValueError, AgentConfigError) as exc:
            log.error("keeping the current configuration: %s", exc)
            return None
        try:
            text = json.dumps(server, sort_keys=True)
            if self.spool.mark(_SERVER_CONFIG_MARK) != text:
                self.spool.append([], marks={_SERVER_CONFIG_MARK: text})
            return built
        except sqlite3.Error as exc:  # caching is a convenience: the config still applies
            log.warning("cannot cache the collector configuration: %s", exc)
            return built

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


def run_agent(
    flags: Mapping[str, Any],
    config_file: Path | None,
    *,
    once: bool,
    stop: threading.Event | None = None,
) -> int:
    """Enroll if needed, then sample and upload (one round with ``once``); the exit code.

    ``stop``: setting it stops the loop as SIGTERM does (it may run in any thread; signal
    handlers are installed only when it runs in the main thread). A watchdog restart then
    ends the loop with :data:`RESTART_EXIT_CODE` instead of re-executing the process.

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
    if insecure_server_url(config.server_url):
        log.warning(
            "allow_insecure_http: talking to %s over plain HTTP; tokens and data cross "
            "the network unencrypted and the server is not authenticated",
            config.server_url,
        )
    with http_client(config) as client:
        identity = _identity(config, client)
        runtime = AgentRuntime(layers, config, identity, client)
        try:
            cached = runtime.cached_server_config()
            if cached is not None and cached != runtime.config:
                runtime.apply(cached)
            runtime.refresh_config()
            if once:
                return _run_once(runtime)
            return _run_forever(runtime, stop)
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


def _run_forever(runtime: AgentRuntime, external_stop: threading.Event | None = None) -> int:
    stop = external_stop if external_stop is not None else threading.Event()
    wake = threading.Event()  # new events spooled (or stopping): the uploader looks now

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        wake.set()

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
                delay = min(delay, max(0.0, next_refresh - time.monotonic()))
            except Exception as exc:  # logged on one line; the loop goes on
                log.error("upload pass failed: %s: %s", type(exc).__name__, exc)
                delay = 5.0
            wake.wait(delay)
            wake.clear()

    previous = (
        {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    network = threading.Thread(target=_network_loop, name="uploader", daemon=True)
    network.start()
    platform.lower_priority()
    own = platform.OwnProcess()
    watchdog = _watchdog(runtime.config)
    restart = False
    try:
        while not stop.is_set():
            try:
                runtime.apply_offered()
                if watchdog is None or watchdog.limits.name != runtime.config.watchdog_profile:
                    watchdog = _watchdog(runtime.config)
                if runtime.sample(only_due=True):
                    wake.set()
                if watchdog is not None:
                    restart = _watch(runtime, watchdog, own)
                    if restart:
                        break
            except Exception as exc:  # e.g. disk full: keep running; the log says why
                log.error("sampling round failed: %s: %s", type(exc).__name__, exc)
            stop.wait(min(runtime.scheduler.next_in_s(), MAX_IDLE_S))
    finally:
        stop.set()
        wake.set()
        network.join(timeout=runtime.config.upload.timeout_s + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if restart and external_stop is not None:
        log.error("watchdog restart: ending with exit code %d", RESTART_EXIT_CODE)
        return RESTART_EXIT_CODE
    if restart:
        runtime.spool.close()
        _reexec()
    log.info("stopped")
    return 0


def _watchdog(config: AgentConfig) -> Watchdog | None:
    limits = PROFILES.get(config.watchdog_profile)
    return Watchdog(limits) if limits is not None else None


def _watch(runtime: AgentRuntime, watchdog: Watchdog, own: platform.OwnProcess) -> bool:
    """Feed the watchdog; act on its decision. True: restart now."""
    decision = watchdog.observe(own.cpu_s(), own.rss_mb())
    if decision is Decision.THROTTLE:
        log.warning(
            "watchdog: over the %s limits (CPU %.1f %%, RSS %.0f MB): throttling",
            watchdog.limits.name,
            watchdog.last_cpu_percent or 0.0,
            own.rss_mb(),
        )
        runtime.set_throttled(True)
    elif decision is Decision.UNTHROTTLE:
        log.info("watchdog: back within limits: throttle lifted")
        runtime.set_throttled(False)
    elif decision is Decision.RESTART:
        restarts = int(runtime.spool.mark("watchdog.restarts") or 0) + 1
        runtime.spool.append([], marks={"watchdog.restarts": str(restarts)})
        log.error("watchdog: still over the %s limits: restarting", watchdog.limits.name)
        return True
    return False


def _reexec() -> None:  # pragma: no cover - replaces the process
    """Start this agent afresh in the same process slot (same PID for the service manager)."""
    if getattr(sys, "frozen", False):
        argv = [sys.executable, *sys.argv[1:]]
    else:
        argv = [sys.executable, *sys.orig_argv[1:]]
    os.execv(sys.executable, argv)


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
    status["collection"] = _collection(state_dir / "spool.db")
    return status


def _collection(path: Path) -> dict[str, Any] | None:
    """What is collected (from the running agent's marks) and from which OS sources."""
    if not path.exists():
        return None
    try:
        marks = read_marks(path)
    except sqlite3.Error:
        return None
    try:
        collection = json.loads(marks.get("collection", "null"))
    except ValueError:
        return None
    if not isinstance(collection, dict):
        return None
    for name, settings in collection.get("samplers", {}).items():
        try:
            source = json.loads(marks.get(source_mark(name), "null"))
        except ValueError:
            source = None
        if isinstance(source, dict) and isinstance(settings, dict):
            settings.update({k: v for k, v in source.items() if v is not None})
    return collection


def print_status(state_dir: Path, as_json: bool) -> None:
    """Print the status for a script (``--json``, one object) or a person (aligned lines)."""
    status = agent_status(state_dir)
    if as_json:
        print(json.dumps(status))
        return
    collection = status.pop("collection")
    for key, value in status.items():
        print(f"{key:34} {value if value is not None else '-'}")
    if not collection:
        print(f"{'collection':34} - (the agent has not run yet)")
        return
    print(f"{'watchdog profile':34} {collection.get('watchdog_profile')}")
    if collection.get("survey_box"):
        kind = "shared" if collection.get("survey_box_shared") else "private"
        print(f"{'survey box':34} {collection['survey_box']} ({kind})")
    print("collecting (sampler, every, source; see docs/privacy.md for every field):")
    for name, settings in sorted(collection.get("samplers", {}).items()):
        extra = {
            k: v
            for k, v in settings.items()
            if k not in ("interval_s", "source", "degraded", "targets")
        }
        line = f"  {name:18} {settings.get('interval_s', 0):>6g} s  {settings.get('source', '')}"
        if extra:
            line += "  " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        if settings.get("targets"):
            line += f"  probes: {', '.join(t.get('name', '?') for t in settings['targets'])}"
        if settings.get("degraded"):
            line += f"  [{settings['degraded']}]"
        print(line)
