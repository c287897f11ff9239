"""Sampler plug-ins: one module each, one interface, one registry.

A sampler is a class with a ``name`` (the wire event type it mostly produces), a default
``interval_s`` and ``collect()`` returning a list of wire events (an empty list means "no
data this time", which is not a failure). ``@register`` adds it to :data:`REGISTRY`; the
configuration turns samplers on by name.
"""

from __future__ import annotations

import importlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from dexscope.wire import Event, SamplerStats

__all__ = [
    "REGISTRY",
    "Sampler",
    "SamplerContext",
    "event_base",
    "load_builtin_samplers",
    "register",
]


@dataclass(frozen=True)
class SamplerContext:
    """What samplers may use: the state dir and read-only views of the agent's plumbing."""

    state_dir: Path
    spool_stats: Callable[[], Any]
    """Returns the spool's :class:`agent.spool.SpoolStats`."""
    sampler_stats: Callable[[], Mapping[str, SamplerStats]]
    """Returns and resets the runner's per-sampler stats."""


class Sampler(ABC):
    """Base class of every sampler."""

    name: ClassVar[str]
    interval_s: ClassVar[float] = 60.0

    def __init__(self, context: SamplerContext) -> None:
        self.context = context

    @abstractmethod
    def collect(self) -> list[Event]:
        """Sample now; return the events (empty: nothing to report)."""


REGISTRY: dict[str, type[Sampler]] = {}
"""Every known sampler class, by name."""

_S = TypeVar("_S", bound=type[Sampler])


def register(cls: _S) -> _S:
    """Class decorator adding a sampler to :data:`REGISTRY`."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two samplers are named {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls


_BUILTIN = ("agent.samplers.boot", "agent.samplers.resource", "agent.samplers.health")


def load_builtin_samplers() -> Mapping[str, type[Sampler]]:
    """Import the built-in sampler modules (registering them) and return the registry."""
    for module in _BUILTIN:
        importlib.import_module(module)
    return REGISTRY


def event_base(ts: datetime | None = None) -> dict[str, Any]:
    """The envelope fields every event carries: a new ``event_id`` and ``ts`` (UTC now)."""
    return {"event_id": uuid.uuid4(), "ts": ts or datetime.now(UTC)}
