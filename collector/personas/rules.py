"""Persona assignment, pure: which persona a device gets, and why.

No database and no I/O: the service hands in the device's facts and the tenant's
candidate personas, and stores what :func:`choose_persona` returns. The order is

1. the device's manual override, if it names a known persona (``override``);
2. the first persona, by ``(priority, name)``, one of whose rules matches (``rule``);
3. the agent's ``persona_hint``, if it names a known persona (``hint``);
4. the default persona (``default``).

A rule matches when every criterion it gives matches (an AND); a persona's rules are
alternatives (an OR). Criteria: ``device_group`` (the device's ``group`` tag),
``hostname`` (a glob, case-insensitive), ``tags`` (every ``K: V`` equal), ``hardware_class``
(:func:`hardware_class`, case-insensitive) and ``os``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "GROUP_TAG",
    "HARDWARE_CLASS_KEYS",
    "RULE_KEYS",
    "SOURCES",
    "Candidate",
    "DeviceFacts",
    "choose_persona",
    "glob_error",
    "hardware_class",
    "rule_matches",
]

GROUP_TAG: Final = "group"
"""The device tag that names its device group (``--tag group=finance``)."""

HARDWARE_CLASS_KEYS: Final = ("hardware_class", "class")
"""Keys of the enrollment ``hardware`` object read as the hardware class, in this order
(the simulator sends ``hardware_class``; an installer may send either)."""

RULE_KEYS: Final = ("device_group", "hostname", "tags", "hardware_class", "os")
"""The criteria a rule may give."""

SOURCES: Final = ("override", "rule", "hint", "default")
"""Values of ``devices.persona_source``, strongest first."""

_GLOB_CHARS = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]+$")


@dataclass(frozen=True)
class DeviceFacts:
    """What assignment looks at on a device."""

    hostname: str
    os: str
    hardware: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    persona_hint: str | None = None
    persona_override: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A persona with assignment rules (only stored tenant personas have rules)."""

    name: str
    priority: int
    rules: Sequence[Mapping[str, Any]]


def hardware_class(hardware: Mapping[str, Any]) -> str | None:
    """The device's hardware class from its enrollment ``hardware`` (None if not sent)."""
    for key in HARDWARE_CLASS_KEYS:
        value = hardware.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def glob_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable hostname glob, or None when it is.

    Hostname characters plus ``*``, ``?`` and ``[...]`` / ``[!...]`` classes; every ``[``
    must close with a non-empty class (fnmatch would silently match a lone ``[``
    literally, which is never what was meant).
    """
    if not pattern:
        return "must not be empty"
    if not _GLOB_CHARS.match(pattern):
        return "may hold only hostname characters and the glob characters * ? [ ] !"
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "]":
            return f"']' at position {i} closes no '['"
        if char == "[":
            end = pattern.find("]", i + 1)
            body = pattern[i + 1 : end] if end != -1 else ""
            if end == -1:
                return f"'[' at position {i} is never closed"
            if "[" in body:
                return f"'[' at position {i} is nested"
            if body in ("", "!"):
                return f"'[' at position {i} opens an empty class"
            i = end
        i += 1
    return None


def rule_matches(rule: Mapping[str, Any], device: DeviceFacts) -> bool:
    """Whether every criterion of ``rule`` matches ``device`` (an empty rule never does)."""
    if not any(key in rule for key in RULE_KEYS):
        return False
    group = rule.get("device_group")
    if group is not None and device.tags.get(GROUP_TAG) != group:
        return False
    pattern = rule.get("hostname")
    if pattern is not None and not fnmatch.fnmatchcase(
        device.hostname.lower(), str(pattern).lower()
    ):
        return False
    tags = rule.get("tags")
    if tags is not None and any(device.tags.get(k) != v for k, v in dict(tags).items()):
        return False
    wanted_class = rule.get("hardware_class")
    if wanted_class is not None:
        actual = hardware_class(device.hardware)
        if actual is None or actual.lower() != str(wanted_class).lower():
            return False
    wanted_os = rule.get("os")
    return wanted_os is None or device.os.lower() == str(wanted_os).lower()


def _ordered(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (c.priority, c.name))


def choose_persona(
    device: DeviceFacts,
    candidates: Iterable[Candidate],
    known: Collection[str],
    default: str,
) -> tuple[str, str]:
    """The persona ``device`` gets and its source (one of :data:`SOURCES`).

    ``known`` is every persona name of the tenant (built-ins and its own); ``candidates``
    are the personas with rules. An override or hint naming no known persona is ignored.
    """
    if device.persona_override is not None and device.persona_override in known:
        return device.persona_override, "override"
    for candidate in _ordered(candidates):
        if any(rule_matches(rule, device) for rule in candidate.rules):
            return candidate.name, "rule"
    if device.persona_hint is not None and device.persona_hint in known:
        return device.persona_hint, "hint"
    return default, "default"
