"""Sampler plug-ins: one module each, one interface, one registry.

A sampler is a class with a ``name`` (the wire event type it mostly produces), a default
``interval_s`` and ``collect(ctx)`` returning a list of wire events (an empty list means "no
data this time", which is not a failure). ``@register`` adds it to :data:`REGISTRY`; the
configuration turns samplers on by name and may override their interval.

Samplers keep their own state between runs (the previous CPU and PSI readings, say) on the
instance; what must survive a restart goes through :meth:`SamplerContext.remember`, which the
runner commits in the same spool transaction as the events (so "this boot was reported" and
the boot event are stored together or not at all).
"""

from __future__ import annotations

import importlib
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from dexscope.wire import Event, SamplerStats

if TYPE_CHECKING:
    from agent.spool import SpoolStats

__all__ = [
    "OBSERVED_TYPES",
    "REGISTRY",
    "Sampler",
    "SamplerContext",
    "event_base",
    "load_builtin_samplers",
    "register",
]


OBSERVED_TYPES = frozenset({"app_crash", "app_hang", "boot", "logon", "system_crash"})
"""Event types the runner shows to other samplers through :attr:`SamplerContext.observed`."""


@dataclass(frozen=True)
class SamplerContext:
    """What samplers may use: the state dir and narrow views of the agent's plumbing."""

    state_dir: Path
    spool_stats: Callable[[], SpoolStats]
    """Returns the spool's current :class:`agent.spool.SpoolStats`."""
    sampler_stats: Callable[[], Mapping[str, SamplerStats]]
    """Returns the runner's per-sampler stats since the previous call, and resets them."""
    recall: Callable[[str], str | None]
    """Reads a value a previous run remembered (persistent, in the spool database)."""
    staged: dict[str, str] = field(default_factory=dict)
    """Values remembered during this round, committed with the round's events."""
    spool_now: Callable[[Sequence[Event], Mapping[str, str]], int] | None = None
    """Stores events and values at once, outside the round's transaction: for a sampler that
    takes data out of somewhere else (the survey box) and must not let go of it before it is
    safely spooled. None where no spool is at hand."""
    observed: deque[Event] = field(default_factory=lambda: deque(maxlen=1000))
    """Notable events (crashes, hangs, boots, sign-ins) produced by samplers, for samplers
    that react to them (the survey sampler's event triggers); the reader drains it."""
    agent_state: dict[str, Any] = field(default_factory=dict)
    """The runtime's live state for self-metrics (``throttled``, ``watchdog_restarts_total``)."""
    survey_box: Path | None = None
    """The survey box shared with every local account (``agent run --survey-box``), or None
    for the service's private box ``state_dir/surveys`` (see :mod:`agent.surveys.box`)."""

    def remember(self, key: str, value: str) -> None:
        """Persist ``key = value`` together with the events of the current round."""
        self.staged[key] = value

    def take_staged(self) -> dict[str, str]:
        """The values remembered since the previous call (then forgotten here)."""
        staged = dict(self.staged)
        self.staged.clear()
        return staged


class Sampler(ABC):
    """Base class of every sampler: ``name``, default ``interval_s``, ``collect(ctx)``."""

    name: ClassVar[str]
    """Unique name; the configuration's ``[samplers.NAME]`` table refers to it."""
    interval_s: ClassVar[float] = 60.0
    """Default seconds between runs (the configuration overrides it)."""

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Validate this sampler's own keys of its ``[samplers.NAME]`` table.

        Raises ``ValueError`` whose message starts with the offending key (the configuration
        prefixes ``samplers.NAME.``). The default accepts no options.
        """
        if options:
            raise ValueError(f"{sorted(options)[0]}: unknown key")

    def configure(self, options: Mapping[str, Any]) -> None:
        """Apply options that :meth:`check_options` accepted (at start and on every reload)."""
        return None  # most samplers take no options

    @abstractmethod
    def collect(self, ctx: SamplerContext) -> list[Event]:
        """Sample now; return the events (an empty list: nothing to report)."""


REGISTRY: dict[str, type[Sampler]] = {}
"""Every known sampler class, by name."""

_S = TypeVar("_S", bound=type[Sampler])


def register(cls: _S) -> _S:
    """Class decorator adding a sampler to :data:`REGISTRY` (names must be unique)."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two samplers are named {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls


_BUILTIN = (
    "agent.samplers.boot",
    "agent.samplers.logon",
    "agent.samplers.resource",
    "agent.samplers.app_resource",
    "agent.samplers.app_hang",
    "agent.samplers.app_crash",
    "agent.samplers.system_crash",
    "agent.samplers.software_change",
    "agent.samplers.probe",
    "agent.samplers.survey",
    "agent.samplers.health",
)


def load_builtin_samplers() -> Mapping[str, type[Sampler]]:
    """Import the built-in sampler modules (registering them) and return the registry."""
    for module in _BUILTIN:
        importlib.import_module(module)
    return REGISTRY


def event_base(ts: datetime | None = None) -> dict[str, Any]:
    """The envelope fields every event carries: a new ``event_id`` and ``ts`` (UTC now)."""
    return {"event_id": uuid.uuid4(), "ts": ts or datetime.now(UTC)}
