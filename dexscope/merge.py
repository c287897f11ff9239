"""Deep merge of configuration layers, shared by the agent and the collector."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(into: dict[str, Any], over: Mapping[str, Any]) -> None:
    """Merge ``over`` into ``into`` in place: tables merge key by key, other values replace."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
