"""The sampling configuration the collector hands to agents.

The defaults below are what an agent gets unless its tenant's ``agent_config`` overrides
parts of them. The shape is documented in docs/wire-protocol.md ("Agent configuration").
"""

from __future__ import annotations

import copy
from typing import Any

from dexscope.merge import deep_merge

__all__ = ["DEFAULT_AGENT_CONFIG", "DEFAULT_SURVEY_SETTINGS", "effective_agent_config"]

DEFAULT_AGENT_CONFIG: dict[str, Any] = {
    "config_version": 1,
    "samplers": {
        "boot": {"enabled": True, "interval_s": 300},
        "logon": {"enabled": True, "interval_s": 120, "user_names": "hash"},
        "resource_sample": {"enabled": True, "interval_s": 60},
        "app_resource": {"enabled": True, "interval_s": 30, "summary_s": 300, "max_apps": 15},
        "app_hang": {"enabled": True, "interval_s": 30, "min_hang_s": 5},
        "app_crash": {"enabled": True, "interval_s": 60},
        "system_crash": {"enabled": True, "interval_s": 300},
        "software_change": {"enabled": True, "interval_s": 300},
        "probe": {"enabled": False, "interval_s": 300, "targets": []},
        "survey": {"enabled": True, "interval_s": 60},
        "agent_health": {"enabled": True, "interval_s": 300},
    },
    "upload": {"max_batch_events": 500, "max_batch_age_s": 300, "max_batch_bytes": 1048576},
    "campaigns": [],
}

DEFAULT_SURVEY_SETTINGS: dict[str, Any] = {
    "min_days_between_prompts": 7,
    "quiet_hours": ["18:00", "09:00"],
    "working_days": [0, 1, 2, 3, 4],
    "snooze_s": 86400,
}
"""Survey fatigue defaults (``surveys`` of the agent config; a tenant may override them).

Quiet hours run from the first time to the second (overnight here); working days count
Monday as 0. The collector adds ``surveys.last_prompt_at`` per device when it serves the
configuration (:func:`collector.devices.service.agent_config_for`).
"""


def effective_agent_config(
    tenant_override: dict[str, Any] | None, pseudonym_key: str | None = None
) -> dict[str, Any]:
    """Defaults deep-merged with a tenant's overrides (overrides win key by key).

    The defaults are :data:`DEFAULT_AGENT_CONFIG` plus ``surveys``
    (:data:`DEFAULT_SURVEY_SETTINGS`); campaigns are added per device by the caller.

    The tenant's ``pseudonym_key`` goes to the ``logon`` sampler, which hashes account
    names with it (per tenant, so a user cannot be linked across tenants).
    """
    merged = copy.deepcopy(DEFAULT_AGENT_CONFIG)
    merged["surveys"] = copy.deepcopy(DEFAULT_SURVEY_SETTINGS)
    if tenant_override:
        deep_merge(merged, tenant_override)
    if pseudonym_key:
        merged["samplers"].setdefault("logon", {})["pseudonym_key"] = pseudonym_key
    return merged
