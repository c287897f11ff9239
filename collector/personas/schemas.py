"""API shapes of personas and of a device's persona.

Validation here is structural (types, unknown keys, ranges that need no context); what
depends on the base persona (known metric names, threshold below frustrating level, a
usable hostname glob) is checked by :func:`collector.personas.service.apply_overrides` and
the service, so that every 422 names the exact field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

__all__ = [
    "DEVICE_PERSONA_REQUEST",
    "NAME_PATTERN",
    "PERSONA_REQUEST",
    "DevicePersonaIn",
    "DevicePersonaOut",
    "EffectivePersona",
    "PersonaDefinition",
    "PersonaIn",
    "PersonaList",
    "PersonaOut",
    "RuleIn",
]

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_.-]*$"
"""Persona names: lower case letters, digits, ``_ . -`` (they are URL path segments)."""

_STRICT = ConfigDict(extra="forbid", strict=True)

PersonaName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NAME_PATTERN)
]
Str64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class PersonaDefinition(BaseModel):
    """Overrides of the base persona's parameters (see :class:`scoring.personas.Persona`).

    Maps are merged key by key into the base's; a scalar given replaces the base's.
    """

    model_config = _STRICT

    thresholds: dict[Str64, Finite] = Field(default_factory=dict)
    """Good level per metric: Apdex T (s) for durations, per active hour for rates, a 0-1
    share for pressure."""
    frustrating: dict[Str64, Finite] = Field(default_factory=dict)
    """Frustrating level per metric (default 4 · threshold); must be above the threshold."""
    subscore_weights: dict[Str64, Weight] = Field(default_factory=dict)
    metric_weights: dict[Str64, Weight] = Field(default_factory=dict)
    min_samples: Annotated[int, Field(ge=1, le=10_000)] | None = None
    min_active_s: Annotated[float, Field(ge=0.0, le=86_400.0)] | None = None
    min_answers: Annotated[int, Field(ge=1, le=1_000)] | None = None
    min_subscores: Annotated[int, Field(ge=1, le=4)] | None = None
    app_crash_cost_min: Annotated[float, Field(ge=0.0, le=1_440.0)] | None = None
    system_crash_cost_min: Annotated[float, Field(ge=0.0, le=1_440.0)] | None = None
    hang_default_s: Annotated[float, Field(gt=0.0, le=86_400.0)] | None = None
    alert_min_score_drop: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    """Score points below a device's baseline before a device alert (detection)."""


class RuleIn(BaseModel):
    """One assignment rule: every criterion given must match (at least one is needed)."""

    model_config = _STRICT

    device_group: Str64 | None = None
    """The device's ``group`` tag."""
    hostname: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    """A glob (``*``, ``?``, ``[...]``), case-insensitive."""
    tags: dict[Str64, Annotated[str, StringConstraints(max_length=256)]] | None = None
    """Every tag given must have this value on the device."""
    hardware_class: Str64 | None = None
    """The ``hardware_class`` (or ``class``) the device sent in ``hardware``."""
    os: Literal["windows", "macos", "linux"] | None = None


class PersonaIn(BaseModel):
    """``POST /api/v1/personas``: create, or replace by name, one persona of a tenant.

    A name of a built-in overrides that built-in; any other name is a custom persona that
    extends ``base`` (a built-in; default: the default persona). ``tenant_id`` is needed
    only by callers not bound to a tenant.
    """

    model_config = _STRICT

    name: PersonaName
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None
    ) = None
    base: Str64 | None = None
    definition: PersonaDefinition = Field(default_factory=PersonaDefinition)
    rules: Annotated[list[RuleIn], Field(max_length=100)] = Field(default_factory=list)
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    tenant_id: uuid.UUID | None = None


PERSONA_REQUEST: TypeAdapter[PersonaIn] = TypeAdapter(PersonaIn)
"""Validator (and JSON Schema) of the create-or-update request."""


class EffectivePersona(BaseModel):
    """Every parameter scoring uses for a persona, after overrides."""

    thresholds: dict[str, float]
    frustrating: dict[str, float]
    """Every scored metric's frustrating level (explicit, or 4 · threshold)."""
    subscore_weights: dict[str, float]
    metric_weights: dict[str, float]
    min_samples: int
    min_active_s: float
    min_answers: int
    min_subscores: int
    app_crash_cost_min: float
    system_crash_cost_min: float
    hang_default_s: float
    alert_min_score_drop: float


class PersonaOut(BaseModel):
    """A persona as one tenant sees it: what is stored, and what scoring uses."""

    name: str
    description: str
    builtin: bool
    """A built-in name (possibly overridden by the tenant)."""
    default: bool
    """The fallback persona of devices no rule or hint places."""
    base: str | None
    """The built-in a custom persona extends (None for built-ins)."""
    customised: bool
    """Whether the tenant stored a definition under this name."""
    tenant_id: uuid.UUID | None
    definition: dict[str, Any]
    """The tenant's overrides as stored (empty for an untouched built-in)."""
    rules: list[dict[str, Any]]
    priority: int | None
    version: int
    """0 for an untouched built-in; 1 on creation, +1 on every change."""
    created_at: datetime | None
    updated_at: datetime | None
    devices: int
    """Devices assigned this persona now."""
    effective: EffectivePersona


class PersonaList(BaseModel):
    """Built-ins in their fixed order, then the tenant's custom personas by name."""

    items: list[PersonaOut]


class DevicePersonaIn(BaseModel):
    """``PUT /api/v1/devices/{id}/persona``: set (a name) or clear (null) the override."""

    model_config = _STRICT

    persona: PersonaName | None


DEVICE_PERSONA_REQUEST: TypeAdapter[DevicePersonaIn] = TypeAdapter(DevicePersonaIn)
"""Validator of the manual-override request."""


class DevicePersonaOut(BaseModel):
    """A device's persona after a change: what it has, why, and the override if any."""

    device_id: uuid.UUID
    persona: str
    persona_source: str
    persona_override: str | None
