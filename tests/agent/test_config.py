"""Layered, validated agent configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import ConfigLayers, SamplerSettings
from agent.errors import AgentConfigError
from agent.samplers import load_builtin_samplers

KNOWN = frozenset(load_builtin_samplers())


def layers(
    tmp_path: Path, toml: str = "", env: dict[str, str] | None = None, **flags: object
) -> ConfigLayers:
    path = None
    if toml:
        path = tmp_path / "agent.toml"
        path.write_text(toml)
    return ConfigLayers.load(
        flags={"state_dir": str(tmp_path), **flags},
        config_file=path,
        environ=env or {},
        known_samplers=KNOWN,
    )


def test_defaults(tmp_path: Path) -> None:
    config = layers(tmp_path).build()
    assert config.upload.max_batch_events == 500
    assert config.samplers["resource_sample"].interval_s == 60.0
    assert config.state_dir == tmp_path.resolve()
    assert config.ca_bundle is None


def test_precedence_defaults_server_file_env_flags(tmp_path: Path) -> None:
    toml = "server_url = 'https://file.example'\n[samplers.resource_sample]\ninterval_s = 30\n"
    env = {"DEXSCOPE_SERVER_URL": "https://env.example/"}
    server = {
        "samplers": {"resource_sample": {"interval_s": 10}, "boot": {"interval_s": 900}},
        "upload": {"max_batch_events": 100},
        "config_version": 7,
    }
    config = layers(tmp_path, toml, env).build(server)
    assert config.server_url == "https://env.example"
    assert config.samplers["resource_sample"].interval_s == 30.0  # the local file pins it
    assert config.samplers["boot"].interval_s == 900.0  # from the server
    assert config.upload.max_batch_events == 100
    assert config.server_config_version == 7
    flagged = layers(tmp_path, toml, env, server_url="https://flag.example").build(server)
    assert flagged.server_url == "https://flag.example"


def test_unknown_server_sampler_is_ignored(tmp_path: Path) -> None:
    config = layers(tmp_path).build({"samplers": {"quantum_probe": {"interval_s": 1}}})
    assert "quantum_probe" not in config.samplers


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 'blue'", "unknown key colour"),
        ("[upload]\nmax_batch_events = 0", "upload.max_batch_events must be between"),
        ("[upload]\nmax_batch_event = 10", "unknown key upload.max_batch_event"),
        ("[samplers.resource_sampel]\ninterval_s = 5", "unknown sampler samplers.resource_sampel"),
        ("[samplers.boot]\nenabled = 'yes'", "samplers.boot.enabled must be true or false"),
        ("server_url = 'ftp://x'", "server_url must start with https://"),
        ("server_url = 'http://collector.corp'", "plain http:// is allowed only to loopback"),
        ("server_url = 'http://127.0.0.1.evil.com'", "plain http:// is allowed only to loopback"),
        ("[upload]\nbackoff_base_s = 10\nbackoff_max_s = 1", "backoff_max_s must be at least"),
        ("[spool]\nmax_age_days = 90", "spool.max_age_days must be between"),
        ("not toml at all ===", "is not valid TOML"),
    ],
)
def test_invalid_file_is_refused_with_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        layers(tmp_path, toml).build()


def test_bad_server_config_raises_so_caller_keeps_previous(tmp_path: Path) -> None:
    base = layers(tmp_path)
    good = base.build()
    with pytest.raises(AgentConfigError):
        base.build({"upload": {"max_batch_events": -5}})
    assert good.upload.max_batch_events == 500  # frozen: nothing was mutated


@pytest.mark.parametrize(
    "url",
    ["https://dex.example.com", "http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"],
)
def test_accepted_server_urls(tmp_path: Path, url: str) -> None:
    assert layers(tmp_path, server_url=url + "/").build().server_url == url


def test_missing_state_dir(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="state_dir is required"):
        ConfigLayers.load(flags={}, config_file=None, environ={}, known_samplers=KNOWN).build()


def test_collector_config_with_a_bad_value_is_refused_and_named(tmp_path: Path) -> None:
    base = layers(tmp_path)
    with pytest.raises(AgentConfigError, match=r"^collector configuration: samplers\.boot"):
        base.build({"samplers": {"boot": {"interval_s": "often"}}})
    with pytest.raises(AgentConfigError, match="collector configuration: upload must be"):
        base.build({"upload": [1, 2]})
    with pytest.raises(AgentConfigError, match="config_version must be an integer"):
        base.build({"config_version": "7"})


def test_a_newer_collector_config_is_taken_in_part(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = {
        "config_version": 3,
        "samplers": {"boot": {"enabled": False, "interval_s": 120}, "hologram": {}},
        "upload": {"max_batch_age_s": 5, "compression": "zstd"},
        "campaigns": [{"id": "c1"}],
    }
    config = layers(tmp_path).build(server)
    assert config.samplers["boot"] == SamplerSettings(enabled=False, interval_s=120.0)
    assert config.upload.max_batch_age_s == 5.0
    assert config.server_config_version == 3
    assert "hologram" in caplog.text and "upload.compression" in caplog.text
    # a campaign this agent cannot parse is dropped, not the configuration
    assert config.samplers["survey"].options["campaigns"] == []
    assert "ignoring campaign 'c1'" in caplog.text


def test_collector_cannot_set_local_only_keys(tmp_path: Path) -> None:
    config = layers(tmp_path).build(
        {"upload": {"timeout_s": 1, "backoff_max_s": 1}, "server_url": "https://evil.example"}
    )
    assert config.upload.timeout_s == 10.0 and config.upload.backoff_max_s == 300.0
    assert config.server_url is None


def test_environment_layer_and_config_file_from_env(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        "persona_hint = 'developer'\n[tags]\nsite = 'lyon'\n[spool]\nmax_bytes = 1048576\n"
    )
    loaded = ConfigLayers.load(
        flags={"tags": {"floor": "3"}},
        config_file=None,
        environ={
            "DEXSCOPE_AGENT_CONFIG": str(path),
            "DEXSCOPE_SERVER_URL": "https://dex.example",
            "DEXSCOPE_ENROLL_TOKEN": "tok-secret",
            "DEXSCOPE_STATE_DIR": str(tmp_path / "state"),
        },
        known_samplers=KNOWN,
    )
    config = loaded.build()
    assert config.persona_hint == "developer"
    assert dict(config.tags) == {"site": "lyon", "floor": "3"}
    assert config.spool.max_bytes == 1048576
    assert config.enroll_token == "tok-secret"
    assert config.state_dir == (tmp_path / "state").resolve()
    assert "tok-secret" not in repr(config)


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="ca_bundle"):
        layers(tmp_path, f"ca_bundle = '{tmp_path / 'missing.pem'}'").build()
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert layers(tmp_path, f"ca_bundle = '{bundle}'").build().ca_bundle == bundle


def test_config_is_frozen_and_reload_builds_a_new_one(tmp_path: Path) -> None:
    base = layers(tmp_path)
    first = base.build()
    second = base.build({"samplers": {"resource_sample": {"interval_s": 15}}})
    assert first.samplers["resource_sample"].interval_s == 60.0
    assert second.samplers["resource_sample"].interval_s == 15.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.server_url = "https://x.example"  # type: ignore[misc]


def test_tags_from_the_environment_merge_under_the_flags(tmp_path: Path) -> None:
    env = {"DEXSCOPE_TAGS": " site=paris ; group=sales,, floor = 3 "}
    config = layers(tmp_path, "[tags]\nteam = 'it'\n", env).build()
    assert dict(config.tags) == {"team": "it", "site": "paris", "group": "sales", "floor": "3"}
    flagged = layers(tmp_path, "", env, tags={"site": "lyon"}).build()
    assert flagged.tags["site"] == "lyon" and flagged.tags["group"] == "sales"
    with pytest.raises(AgentConfigError, match="DEXSCOPE_TAGS: 'oops' is not KEY=VALUE"):
        layers(tmp_path, "", {"DEXSCOPE_TAGS": "site=paris,oops"})
