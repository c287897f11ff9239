"""Collector settings: ``DEXSCOPE_*`` environment variables, a TOML file, then defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "default_data_dir", "normalise_database_url"]


def default_data_dir() -> Path:
    """Where the embedded SQLite database lives when no URL is given."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dexscope"


class Settings(BaseSettings):
    """Everything the collector reads from its environment.

    Precedence: explicit constructor arguments (CLI flags) > ``DEXSCOPE_*`` environment >
    the TOML file named by ``DEXSCOPE_CONFIG`` (section ``[collector]``) > defaults.
    """

    model_config = SettingsConfigDict(env_prefix="DEXSCOPE_", extra="forbid")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; None = SQLite file `collector.db` under data_dir.",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0, description="compressed body cap")
    max_decompressed_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_clock_offset_s: float = Field(
        default=120.0,
        ge=0,
        description="beyond this difference between a batch's sent_at and the receive time, "
        "event timestamps are shifted by the measured offset",
    )
    max_future_skew_s: float = Field(default=600.0, ge=0)
    max_event_age_days: float = Field(default=35.0, gt=0)
    raw_retention_days: int = Field(default=30, gt=0)
    retention_every_h: float = Field(
        default=24.0,
        ge=0,
        description="the retention job deletes at most this often (it scans every event, and "
        "its cutoffs move by a day a day); 0 runs it on every jobs run",
    )
    rollup_retention_days: int = Field(
        default=396,
        gt=0,
        description="daily rollups (device and app scores) older than this are deleted; "
        "396 days = 13 months, so a year-on-year XLA report still has its month",
    )
    scoring_receive_lag_s: float = Field(
        default=120.0,
        ge=0,
        description="the scoring job's received-at watermark trails its start by this much, "
        "so a batch another collector process is still committing is scored next run",
    )
    device_token_ttl_days: int | None = Field(default=None, gt=0)
    db_pool_size: int = Field(default=10, gt=0)
    trusted_hosts: list[str] = Field(default_factory=lambda: ["*"])
    dashboard_csrf_key: str = Field(
        default="",
        description="server key mixed into the dashboard's CSRF tokens (an HMAC of the "
        "session); set the same value on every collector process",
    )
    public_url: str | None = Field(
        default=None,
        description="the collector's external base URL (e.g. https://dex.example.com), "
        "used for the dashboard links in alert notifications; None = no link",
    )
    max_ticket_body_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="cap of a ticket import body"
    )
    notify_timeout_s: float = Field(
        default=10.0, gt=0, description="per-request timeout of a webhook delivery"
    )
    notify_max_attempts: int = Field(
        default=8, ge=1, description="attempts before a webhook delivery is marked failed"
    )
    notify_backoff_base_s: float = Field(
        default=30.0, ge=0, description="delay before the first retry; doubles each attempt"
    )
    notify_backoff_max_s: float = Field(
        default=6 * 3600.0, ge=0, description="cap of a retry delay (also of a Retry-After)"
    )
    notify_concurrency: int = Field(
        default=8, ge=1, description="webhook deliveries sent in parallel by one job run"
    )
    notify_batch_size: int = Field(
        default=200, ge=1, description="most deliveries one notify run claims at a time"
    )

    ingest_rate_per_device_per_min: float = Field(
        default=60.0,
        ge=0,
        description="ingest requests one device may make per minute (token-bucket refill; "
        "0 = no limit); a device reports about every 5 minutes",
    )
    ingest_burst_per_device: int = Field(
        default=120, ge=1, description="ingest requests one device may make back to back"
    )
    ingest_rate_per_ip_per_min: float = Field(
        default=12000.0,
        ge=0,
        description="ingest requests per minute from one client address (0 = no limit); "
        "many devices can share an address (NAT, a proxy)",
    )
    ingest_burst_per_ip: int = Field(
        default=2000, ge=1, description="ingest requests one client address may make at once"
    )
    enroll_rate_per_ip_per_min: float = Field(
        default=300.0,
        ge=0,
        description="enrollments per minute from one client address (0 = no limit)",
    )
    enroll_burst_per_ip: int = Field(
        default=1000, ge=1, description="enrollments one client address may make at once"
    )
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; needs tls_key too",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")

    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'collector.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the TOML file (``DEXSCOPE_CONFIG``) below the environment."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("DEXSCOPE_CONFIG")
        if config_file:
            sources.append(_CollectorTomlSource(settings_cls, Path(config_file)))
        return tuple(sources)


class _CollectorTomlSource(TomlConfigSettingsSource):
    """Reads the ``[collector]`` table of the DexScope TOML config file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise ValueError(f"DEXSCOPE_CONFIG names {path}, which is not a readable file")
        super().__init__(settings_cls, toml_file=path)
        table: Any = self.toml_data.get("collector", {})
        if not isinstance(table, dict):
            raise ValueError(f"{path}: [collector] must be a table")
        self.toml_data = table
        self.init_kwargs = table


def normalise_database_url(url: str) -> str:
    """Map the plain ``postgresql://`` scheme to the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
