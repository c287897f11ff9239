"""The sampling configuration the collector hands to agents.

The defaults below are what an agent gets unless its tenant's ``agent_config`` overrides
parts of them. The shape is documented in docs/wire-protocol.md ("Agent configuration").
"""

from __future__ import annotations

import copy
from typing import Any

from dexscope.merge import deep_merge

__all__ = ["DEFAULT_AGENT_CONFIG", "effective_agent_config"]

DEFAULT_AGENT_CONFIG: dict[str, Any] = {
    "config_version": 1,
    "samplers": {
        "boot": {"enabled": True, "interval_s": 300},
        "resource_sample": {"enabled": True, "interval_s": 60},
        "agent_health": {"enabled": True, "interval_s": 300},
    },
    "upload": {"max_batch_events": 500, "max_batch_age_s": 60, "max_batch_bytes": 1048576},
    "campaigns": [],
}


def effective_agent_config(tenant_override: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults deep-merged with a tenant's overrides (overrides win key by key)."""
    merged = copy.deepcopy(DEFAULT_AGENT_CONFIG)
    if tenant_override:
        deep_merge(merged, tenant_override)
    return merged
