"""Agent configuration: layered, validated, immutable.

Layers, lowest first: built-in defaults < the collector's configuration (sampling and
upload settings only) < the TOML file (``--config`` or ``DEXSCOPE_AGENT_CONFIG``) <
environment (``DEXSCOPE_SERVER_URL``, ``DEXSCOPE_ENROLL_TOKEN``, ``DEXSCOPE_STATE_DIR``,
``DEXSCOPE_SURVEY_BOX``, ``DEXSCOPE_TAGS``) < command-line flags. A local administrator's
file therefore pins what the server would set.

A change (a new server configuration) is applied by validating the merged layers into a new
:class:`AgentConfig`, never by mutating the running one; an invalid server configuration is
refused and the previous one kept.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agent.errors import AgentConfigError
from agent.samplers import REGISTRY
from agent.surveys.model import CampaignError, parse_campaign
from agent.watchdog import PROFILES
from dexscope.merge import deep_merge

__all__ = [
    "DEFAULTS",
    "AgentConfig",
    "ConfigLayers",
    "SamplerSettings",
    "SpoolSettings",
    "UploadSettings",
    "default_environ",
    "insecure_server_url",
    "parse_tags",
    "server_layer",
]

log = logging.getLogger(__name__)

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "upload": {
            "max_batch_events": 500,
            "max_batch_bytes": 1024 * 1024,
            "max_batch_age_s": 300.0,
            "flush_jitter": 0.1,
            "timeout_s": 10.0,
            "backoff_base_s": 1.0,
            "backoff_max_s": 300.0,
        },
        "spool": {"max_bytes": 64 * 1024 * 1024, "max_age_days": 30.0},
        "samplers": {
            "boot": {"enabled": True, "interval_s": 300.0},
            "logon": {"enabled": True, "interval_s": 120.0},
            "resource_sample": {"enabled": True, "interval_s": 60.0},
            "app_resource": {"enabled": True, "interval_s": 30.0},
            "app_hang": {"enabled": True, "interval_s": 30.0},
            "app_crash": {"enabled": True, "interval_s": 60.0},
            "system_crash": {"enabled": True, "interval_s": 300.0},
            "software_change": {"enabled": True, "interval_s": 300.0},
            "probe": {"enabled": False, "interval_s": 300.0},
            "survey": {"enabled": True, "interval_s": 60.0},
            "agent_health": {"enabled": True, "interval_s": 300.0},
        },
        "config_refresh_s": 300.0,
        "watchdog": {"profile": "normal"},
    }
)

_SAMPLER_KEYS = frozenset({"enabled", "interval_s"})

_TOP_KEYS = {
    "server_url",
    "enroll_token",
    "state_dir",
    "survey_box",
    "persona_hint",
    "ca_bundle",
    "allow_insecure_http",
    "tags",
    "upload",
    "spool",
    "samplers",
    "config_refresh_s",
    "watchdog",
}


@dataclass(frozen=True)
class SamplerSettings:
    """Whether a sampler runs, how often, and its own options (validated by the sampler)."""

    enabled: bool
    interval_s: float
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class UploadSettings:
    """Batching and retry settings of the uploader."""

    max_batch_events: int
    max_batch_bytes: int
    max_batch_age_s: float
    flush_jitter: float
    timeout_s: float
    backoff_base_s: float
    backoff_max_s: float


@dataclass(frozen=True)
class SpoolSettings:
    """Bounds of the on-disk spool."""

    max_bytes: int
    max_age_days: float


@dataclass(frozen=True)
class AgentConfig:
    """The validated configuration the agent runs with (immutable: a reload builds anew).

    ``ca_bundle`` None means the system's trust store; TLS verification is always on.
    ``allow_insecure_http`` is the explicit opt-in to a plain ``http://`` server_url that is
    not this machine's loopback (the agent logs a warning when it uses it).
    ``enroll_token`` is a secret and stays out of ``repr``. ``survey_box`` None means the
    service's private box ``state_dir/surveys``; a path is a box shared with every local
    account (a system service with per-user survey helpers; see :mod:`agent.surveys.box`).
    """

    server_url: str | None
    enroll_token: str | None = field(repr=False)
    state_dir: Path
    persona_hint: str | None
    ca_bundle: Path | None
    tags: Mapping[str, str]
    upload: UploadSettings
    spool: SpoolSettings
    samplers: Mapping[str, SamplerSettings]
    config_refresh_s: float
    watchdog_profile: str = "normal"
    """A profile of :data:`agent.watchdog.PROFILES`, or ``off``."""
    server_config_version: int | None = None
    allow_insecure_http: bool = False
    survey_box: Path | None = None


def _number(where: str, value: Any, *, minimum: float, maximum: float, integer: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentConfigError(f"{where} must be a number, not {value!r}")
    if integer and not float(value).is_integer():
        raise AgentConfigError(f"{where} must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise AgentConfigError(f"{where} must be between {minimum:g} and {maximum:g}")
    return int(value) if integer else float(value)


def _table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AgentConfigError(f"{where} must be a table")
    return value


def _string(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AgentConfigError(f"{where} must be a non-empty string")
    return value.strip()


_UPLOAD_BOUNDS: Mapping[str, tuple[float, float, bool]] = {
    "max_batch_events": (1, 5000, True),
    "max_batch_bytes": (1024, 4 * 1024 * 1024, True),
    "max_batch_age_s": (0.05, 86400, False),
    "flush_jitter": (0, 1, False),
    "timeout_s": (0.5, 600, False),
    "backoff_base_s": (0.05, 3600, False),
    "backoff_max_s": (0.05, 86400, False),
}
_SPOOL_BOUNDS: Mapping[str, tuple[float, float, bool]] = {
    "max_bytes": (64 * 1024, 16 * 1024**3, True),
    "max_age_days": (0.01, 30, False),
}


def _section(
    name: str, raw: Mapping[str, Any], bounds: Mapping[str, tuple[float, float, bool]]
) -> dict[str, Any]:
    unknown = set(raw) - set(bounds)
    if unknown:
        raise AgentConfigError(f"unknown key {name}.{sorted(unknown)[0]}")
    return {
        key: _number(f"{name}.{key}", raw[key], minimum=lo, maximum=hi, integer=integer)
        for key, (lo, hi, integer) in bounds.items()
    }


_LOOPBACK = re.compile(r"^http://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?(/.*)?$")


def _check_server_url(url: str, allow_insecure_http: bool = False) -> str:
    """HTTPS (verified) to any collector; plain HTTP only to this machine's loopback, or
    anywhere with the explicit ``allow_insecure_http`` opt-in."""
    if url.startswith("https://"):
        return url.rstrip("/")
    if _LOOPBACK.match(url):
        return url.rstrip("/")
    if allow_insecure_http and url.startswith("http://") and len(url) > len("http://"):
        return url.rstrip("/")
    raise AgentConfigError(
        "server_url must start with https:// (plain http:// is allowed only to loopback, "
        "e.g. http://127.0.0.1:8080, or with allow_insecure_http = true)"
    )


def insecure_server_url(url: str | None) -> bool:
    """Whether ``url`` is plain HTTP to a host other than this machine's loopback."""
    return bool(url) and str(url).startswith("http://") and not _LOOPBACK.match(str(url))


def _validate(merged: Mapping[str, Any], known_samplers: frozenset[str]) -> AgentConfig:
    unknown = set(merged) - _TOP_KEYS - {"config_version", "campaigns"}
    if unknown:
        raise AgentConfigError(f"unknown key {sorted(unknown)[0]}")
    samplers: dict[str, SamplerSettings] = {}
    for name, raw in _table("samplers", merged["samplers"]).items():
        if name not in known_samplers:
            raise AgentConfigError(
                f"unknown sampler samplers.{name} (known: {', '.join(sorted(known_samplers))})"
            )
        table = _table(f"samplers.{name}", raw)
        options = {k: copy.deepcopy(v) for k, v in table.items() if k not in _SAMPLER_KEYS}
        sampler_cls = REGISTRY.get(name)
        if sampler_cls is not None:
            try:
                sampler_cls.check_options(options)
            except ValueError as exc:
                raise AgentConfigError(f"samplers.{name}.{exc}") from exc
        elif options:
            raise AgentConfigError(f"unknown key samplers.{name}.{sorted(options)[0]}")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise AgentConfigError(f"samplers.{name}.enabled must be true or false")
        interval = _number(
            f"samplers.{name}.interval_s",
            table.get("interval_s", 60.0),
            minimum=0.01,
            maximum=86400,
            integer=False,
        )
        samplers[name] = SamplerSettings(
            enabled=enabled, interval_s=interval, options=MappingProxyType(options)
        )
    upload = UploadSettings(
        **_section("upload", _table("upload", merged["upload"]), _UPLOAD_BOUNDS)
    )
    if upload.backoff_max_s < upload.backoff_base_s:
        raise AgentConfigError("upload.backoff_max_s must be at least upload.backoff_base_s")
    spool = SpoolSettings(**_section("spool", _table("spool", merged["spool"]), _SPOOL_BOUNDS))
    tags_raw = _table("tags", merged.get("tags") or {})
    tags: dict[str, str] = {}
    for key, value in tags_raw.items():
        if not isinstance(value, str) or not key or len(key) > 64 or len(value) > 256:
            raise AgentConfigError(f"tags.{key} must be a string (keys ≤ 64, values ≤ 256 chars)")
        tags[str(key)] = value
    allow_insecure_http = merged.get("allow_insecure_http", False)
    if not isinstance(allow_insecure_http, bool):
        raise AgentConfigError("allow_insecure_http must be true or false")
    server_url = _string("server_url", merged.get("server_url"))
    if server_url is not None:
        server_url = _check_server_url(server_url, allow_insecure_http)
    state_dir = _string("state_dir", merged.get("state_dir"))
    if state_dir is None:
        raise AgentConfigError("state_dir is required (--state-dir or DEXSCOPE_STATE_DIR)")
    resolved_state = Path(state_dir).expanduser().resolve()
    survey_box = _string("survey_box", merged.get("survey_box"))
    box_path = Path(survey_box).expanduser().resolve() if survey_box else None
    if box_path is not None and (box_path == resolved_state or resolved_state in box_path.parents):
        raise AgentConfigError(
            "survey_box must be outside state_dir (the state folder is private to the service)"
        )
    ca_bundle = _string("ca_bundle", merged.get("ca_bundle"))
    if ca_bundle is not None and not Path(ca_bundle).expanduser().is_file():
        raise AgentConfigError(f"ca_bundle {ca_bundle} is not a readable file")
    version = merged.get("config_version")
    watchdog = _table("watchdog", merged.get("watchdog", {}))
    if set(watchdog) - {"profile"}:
        raise AgentConfigError(f"unknown key watchdog.{sorted(set(watchdog) - {'profile'})[0]}")
    profile = watchdog.get("profile", "normal")
    if profile != "off" and profile not in PROFILES:
        raise AgentConfigError(
            f"watchdog.profile must be one of {', '.join([*PROFILES, 'off'])}, not {profile!r}"
        )
    return AgentConfig(
        server_url=server_url,
        enroll_token=_string("enroll_token", merged.get("enroll_token")),
        state_dir=resolved_state,
        persona_hint=_string("persona_hint", merged.get("persona_hint")),
        ca_bundle=Path(ca_bundle).expanduser() if ca_bundle else None,
        tags=MappingProxyType(tags),
        upload=upload,
        spool=spool,
        samplers=MappingProxyType(samplers),
        config_refresh_s=_number(
            "config_refresh_s", merged["config_refresh_s"], minimum=1, maximum=86400, integer=False
        ),
        watchdog_profile=str(profile),
        server_config_version=version if isinstance(version, int) else None,
        allow_insecure_http=allow_insecure_http,
        survey_box=box_path,
    )


@dataclass(frozen=True)
class ConfigLayers:
    """The local layers (file, environment, flags); :meth:`build` merges them."""

    file: Mapping[str, Any]
    env: Mapping[str, Any]
    flags: Mapping[str, Any]
    known_samplers: frozenset[str]

    @classmethod
    def load(
        cls,
        *,
        flags: Mapping[str, Any],
        config_file: Path | None,
        environ: Mapping[str, str],
        known_samplers: frozenset[str],
    ) -> ConfigLayers:
        """Read the TOML file and the environment; flags whose value is None are unset."""
        path = config_file or (
            Path(environ["DEXSCOPE_AGENT_CONFIG"]) if environ.get("DEXSCOPE_AGENT_CONFIG") else None
        )
        file_layer: dict[str, Any] = {}
        if path is not None:
            try:
                file_layer = tomllib.loads(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise AgentConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise AgentConfigError(f"config file {path} is not valid TOML: {exc}") from exc
            unknown = set(file_layer) - _TOP_KEYS
            if unknown:
                raise AgentConfigError(f"unknown key {sorted(unknown)[0]} in {path}")
        env_layer: dict[str, Any] = {
            key: environ[var]
            for key, var in (
                ("server_url", "DEXSCOPE_SERVER_URL"),
                ("enroll_token", "DEXSCOPE_ENROLL_TOKEN"),
                ("state_dir", "DEXSCOPE_STATE_DIR"),
                ("survey_box", "DEXSCOPE_SURVEY_BOX"),
            )
            if environ.get(var)
        }
        insecure = environ.get("DEXSCOPE_ALLOW_INSECURE_HTTP", "").strip().lower()
        if insecure:
            if insecure not in ("true", "1", "false", "0"):
                raise AgentConfigError("DEXSCOPE_ALLOW_INSECURE_HTTP must be true or false")
            env_layer["allow_insecure_http"] = insecure in ("true", "1")
        if environ.get("DEXSCOPE_TAGS"):
            env_layer["tags"] = parse_tags(environ["DEXSCOPE_TAGS"], "DEXSCOPE_TAGS")
        flag_layer = {k: v for k, v in flags.items() if v is not None}
        return cls(file_layer, env_layer, flag_layer, known_samplers)

    def build(self, server: Mapping[str, Any] | None = None) -> AgentConfig:
        """Merge defaults < server < file < env < flags and validate into a new config.

        A bad value in the server's configuration raises :class:`AgentConfigError` whose
        message starts with ``collector configuration:`` (the caller keeps its previous
        config); unknown sampler or upload names from a newer server are ignored, logged.
        """
        merged: dict[str, Any] = copy.deepcopy(dict(DEFAULTS))
        if server:
            layer = server_layer(server, self.known_samplers)
            alone = copy.deepcopy(dict(DEFAULTS))
            deep_merge(alone, layer)
            alone["state_dir"] = "."
            try:
                _validate(alone, self.known_samplers)
            except AgentConfigError as exc:
                raise AgentConfigError(f"collector configuration: {exc}") from exc
            deep_merge(merged, layer)
        for local in (self.file, self.env, self.flags):
            deep_merge(merged, local)
        return _validate(merged, self.known_samplers)


def parse_tags(text: str, source: str) -> dict[str, str]:
    """Installer tags from ``key=value`` pairs separated by commas or semicolons.

    ``DEXSCOPE_TAGS="site=paris,group=sales"`` is how the Windows MSI and the Linux
    package's seed file hand tags to a service, where flags cannot be split safely. Blank
    items are skipped; an item without ``=`` or with an empty key is an error naming it.
    """
    tags: dict[str, str] = {}
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AgentConfigError(f"{source}: {item!r} is not KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


_SERVER_UPLOAD_KEYS = ("max_batch_events", "max_batch_age_s", "max_batch_bytes")


def server_layer(server: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The parts of a collector configuration the agent takes, as a config layer.

    Format: ``{"config_version": int, "samplers": {name: {"enabled", "interval_s"}},
    "upload": {"max_batch_events", "max_batch_age_s", "max_batch_bytes"}, "campaigns": []}``.
    Sampler and upload names this agent does not know are ignored with a warning (a newer
    collector); a wrong shape raises :class:`AgentConfigError`.
    """
    layer: dict[str, Any] = {}
    samplers = server.get("samplers", {})
    if not isinstance(samplers, Mapping):
        raise AgentConfigError("collector configuration: samplers must be an object")
    taken: dict[str, Any] = {}
    for name, value in samplers.items():
        if name in known:
            taken[name] = value
        else:
            log.warning("collector configures sampler %r, which this agent lacks; ignored", name)
    campaigns = server.get("campaigns")
    surveys = server.get("surveys")
    if (campaigns is not None or surveys is not None) and "survey" in known:
        # Campaigns and fatigue rules travel as the survey sampler's options, so they are
        # validated with the rest of the configuration and applied by rebuilding it.
        if campaigns is not None and not isinstance(campaigns, list):
            raise AgentConfigError("collector configuration: campaigns must be a list")
        if surveys is not None and not isinstance(surveys, Mapping):
            raise AgentConfigError("collector configuration: surveys must be an object")
        survey = dict(taken.get("survey", {}))
        if campaigns is not None:
            usable = []
            for raw in campaigns:
                try:
                    parse_campaign(raw)
                except CampaignError as exc:
                    # one campaign this agent cannot run (a newer collector's, or a broken
                    # one) must not cost the device its whole configuration
                    ident = raw.get("id") if isinstance(raw, Mapping) else None
                    log.warning("ignoring campaign %r from the collector: %s", ident, exc)
                    continue
                usable.append(raw)
            survey["campaigns"] = usable
        if surveys is not None:
            survey["fatigue"] = dict(surveys)
        taken["survey"] = survey
    layer["samplers"] = taken
    upload = server.get("upload", {})
    if not isinstance(upload, Mapping):
        raise AgentConfigError("collector configuration: upload must be an object")
    for key in sorted(set(upload) - set(_SERVER_UPLOAD_KEYS)):
        log.warning("collector sets upload.%s, which this agent lacks; ignored", key)
    layer["upload"] = {k: v for k, v in upload.items() if k in _SERVER_UPLOAD_KEYS}
    watchdog = server.get("watchdog")
    if watchdog is not None:
        if not isinstance(watchdog, Mapping):
            raise AgentConfigError("collector configuration: watchdog must be an object")
        layer["watchdog"] = dict(watchdog)
    version = server.get("config_version")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise AgentConfigError("collector configuration: config_version must be an integer")
        layer["config_version"] = version
    return layer


def default_environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
