"""Persona use cases: the personas of a tenant, their definitions, and device assignment.

The built-in personas are :data:`scoring.personas.DEFAULT_PERSONAS`. A tenant's stored
persona either overrides the built-in of the same name or extends a built-in (``base``);
its ``definition`` holds only the overrides, merged into the base's parameters here.
:func:`personas_for_tenant` is what the scoring job uses.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import scoring.personas as sp
from collector.db import utcnow
from collector.devices.models import Device
from collector.devices.repository import DeviceRepository
from collector.errors import Conflict, Forbidden, NotFound, UnprocessableEntity, loc_to_field
from collector.identity.roles import Identity, Role
from collector.personas.models import TenantPersona
from collector.personas.repository import PersonaRepository
from collector.personas.rules import Candidate, DeviceFacts, choose_persona, glob_error
from collector.personas.schemas import (
    DEVICE_PERSONA_REQUEST,
    PERSONA_REQUEST,
    DevicePersonaOut,
    EffectivePersona,
    PersonaIn,
    PersonaList,
    PersonaOut,
)
from collector.tenants.service import target_tenant

__all__ = [
    "SCORED_METRICS",
    "apply_overrides",
    "assign_persona",
    "builtin_personas",
    "default_persona_name",
    "effective",
    "get_persona",
    "list_personas",
    "parse_persona",
    "personas_for_tenant",
    "reassign_tenant",
    "save_persona",
    "set_device_persona",
]

log = logging.getLogger(__name__)

SCORED_METRICS: Final[tuple[str, ...]] = tuple(m for m in sp.METRICS if m != "sentiment")
"""Metrics with a threshold and a frustrating level (every metric but sentiment)."""

_MAPS: Final = ("thresholds", "frustrating", "subscore_weights", "metric_weights")
_SCALARS: Final = (
    "min_samples",
    "min_active_s",
    "min_answers",
    "min_subscores",
    "app_crash_cost_min",
    "system_crash_cost_min",
    "hang_default_s",
    "alert_min_score_drop",
)
_OVERRIDERS: Final = frozenset({Role.ADMIN, Role.ANALYST})


# --- built-ins and overrides (pure) -------------------------------------------------------


def builtin_personas() -> dict[str, sp.Persona]:
    """The built-in personas by name, in :data:`scoring.personas.DEFAULT_PERSONAS` order."""
    return {p.name: p for p in sp.DEFAULT_PERSONAS}


def default_persona_name() -> str:
    """The persona of devices no override, rule or hint places: the knowledge worker."""
    return sp.DEFAULT_PERSONAS[0].name


def _invalid(field: str, message: str, code: str = "validation_error") -> UnprocessableEntity:
    return UnprocessableEntity(f"{field}: {message}", code=code, field=field)


def apply_overrides(
    base: sp.Persona, name: str, description: str | None, definition: Mapping[str, Any]
) -> sp.Persona:
    """``base`` with ``definition``'s overrides applied, as a scoring :class:`Persona`.

    Maps (thresholds, frustrating, weights) merge key by key; scalars replace. Raises
    :class:`UnprocessableEntity` naming the field (``definition.thresholds.boot``...) for
    unknown metrics or sub-scores, a threshold out of range for its metric's kind, a
    frustrating level not above its threshold, negative or all-zero weights.
    """
    allowed = {
        "thresholds": SCORED_METRICS,
        "frustrating": SCORED_METRICS,
        "metric_weights": sp.METRICS,
        "subscore_weights": sp.SUBSCORES,
    }
    overrides: dict[str, dict[str, float]] = {}
    for label in _MAPS:
        given = dict(definition.get(label) or {})
        for key in given:
            if key not in allowed[label]:
                what = "sub-score" if label == "subscore_weights" else "metric"
                raise _invalid(
                    f"definition.{label}.{key}",
                    f"unknown {what}; one of {', '.join(allowed[label])}",
                )
        for key, value in given.items():
            if label.endswith("weights") and value < 0:
                raise _invalid(f"definition.{label}.{key}", "a weight must be ≥ 0")
        overrides[label] = {k: float(v) for k, v in given.items()}
    thresholds = {**base.thresholds, **overrides["thresholds"]}
    frustrating = {**base.frustrating, **overrides["frustrating"]}
    for metric in SCORED_METRICS:
        kind = sp.METRIC_KIND[sp.METRICS.index(metric)]
        good = thresholds[metric]
        bad = frustrating.get(metric, 4.0 * good)
        t_field = f"definition.thresholds.{metric}"
        f_field = f"definition.frustrating.{metric}"
        if kind == sp.DURATION and good <= 0:
            raise _invalid(t_field, f"a duration threshold must be > 0 s, not {good:g}")
        if good < 0:
            raise _invalid(t_field, f"must be ≥ 0, not {good:g}")
        if kind == sp.PRESSURE:
            for field, level in ((t_field, good), (f_field, bad)):
                if level > 1:
                    raise _invalid(field, f"a pressure level is a 0-1 share, not {level:g}")
        if bad <= good:
            field = f_field if metric in overrides["frustrating"] else t_field
            raise _invalid(
                field,
                f"the frustrating level ({bad:g}) must be above the threshold ({good:g})",
            )
    subscore_weights = {**base.subscore_weights, **overrides["subscore_weights"]}
    if sum(subscore_weights.values()) <= 0:
        raise _invalid("definition.subscore_weights", "the sub-score weights are all zero")
    scalars = {key: definition[key] for key in _SCALARS if definition.get(key) is not None}
    try:
        return dataclasses.replace(
            base,
            name=name,
            description=description if description is not None else base.description,
            thresholds=MappingProxyType(thresholds),
            frustrating=MappingProxyType(frustrating),
            subscore_weights=MappingProxyType(subscore_weights),
            metric_weights=MappingProxyType({**base.metric_weights, **overrides["metric_weights"]}),
            **scalars,
        )
    except (TypeError, ValueError) as exc:  # a check of Persona's not mirrored above
        raise _invalid("definition", str(exc)) from exc


def _base_of(name: str, base: str | None) -> sp.Persona | None:
    """The built-in a persona builds on: itself for a built-in name, else ``base``."""
    builtins = builtin_personas()
    if name in builtins:
        return builtins[name]
    return builtins.get(base or default_persona_name())


def _from_row(row: TenantPersona) -> sp.Persona:
    """A stored persona as scoring uses it.

    Should a stored definition no longer fit a changed built-in, the base's parameters
    are used under the persona's name (and a warning logged) rather than failing scoring.
    """
    base = _base_of(row.name, row.base) or builtin_personas()[default_persona_name()]
    try:
        return apply_overrides(base, row.name, row.description, row.definition or {})
    except UnprocessableEntity as exc:
        log.warning("persona %r of tenant %s: %s; using its base", row.name, row.tenant_id, exc)
        return dataclasses.replace(
            base, name=row.name, description=row.description or base.description
        )


def _resolved(rows: Iterable[TenantPersona]) -> list[tuple[sp.Persona, TenantPersona | None]]:
    """Built-ins (overridden where the tenant stored one) in order, then custom by name."""
    stored = {row.name: row for row in rows}
    out: list[tuple[sp.Persona, TenantPersona | None]] = []
    for name, builtin in builtin_personas().items():
        row = stored.pop(name, None)
        out.append((_from_row(row) if row is not None else builtin, row))
    for name in sorted(stored):
        out.append((_from_row(stored[name]), stored[name]))
    return out


def personas_for_tenant(session: Session, tenant_id: uuid.UUID) -> list[sp.Persona]:
    """The personas scoring uses for a tenant, as scoring :class:`Persona` objects.

    The built-ins in :data:`scoring.personas.DEFAULT_PERSONAS` order, each with the
    tenant's same-name overrides applied, then the tenant's custom personas by name.
    """
    return [p for p, _row in _resolved(PersonaRepository(session).for_tenant(tenant_id))]


def effective(persona: sp.Persona) -> EffectivePersona:
    """Every parameter of ``persona`` that scoring uses (frustrating levels filled in)."""
    return EffectivePersona(
        thresholds=dict(persona.thresholds),
        frustrating={m: persona.frustrating_level(m) for m in SCORED_METRICS},
        subscore_weights={s: persona.subscore_weights.get(s, 0.0) for s in sp.SUBSCORES},
        metric_weights={m: persona.metric_weights.get(m, 0.0) for m in sp.METRICS},
        min_samples=persona.min_samples,
        min_active_s=persona.min_active_s,
        min_answers=persona.min_answers,
        min_subscores=persona.min_subscores,
        app_crash_cost_min=persona.app_crash_cost_min,
        system_crash_cost_min=persona.system_crash_cost_min,
        hang_default_s=persona.hang_default_s,
        alert_min_score_drop=persona.alert_min_score_drop,
    )


# --- reading ------------------------------------------------------------------------------


def _out(
    persona: sp.Persona,
    row: TenantPersona | None,
    tenant_id: uuid.UUID | None,
    counts: Mapping[str, int],
) -> PersonaOut:
    builtin = persona.name in builtin_personas()
    return PersonaOut(
        name=persona.name,
        description=persona.description,
        builtin=builtin,
        default=persona.name == default_persona_name(),
        base=None if builtin else (row.base if row and row.base else default_persona_name()),
        customised=row is not None,
        tenant_id=tenant_id,
        definition=dict(row.definition) if row else {},
        rules=list(row.rules) if row else [],
        priority=row.priority if row else None,
        version=row.version if row else 0,
        created_at=row.created_at if row else None,
        updated_at=row.updated_at if row else None,
        devices=counts.get(persona.name, 0),
        effective=effective(persona),
    )


def list_personas(session: Session, tenant_id: uuid.UUID | None) -> PersonaList:
    """The personas of ``tenant_id`` with device counts.

    Without a tenant (an MSP-wide caller that named none) only the untouched built-ins
    are listed, with the devices of every tenant counted.
    """
    repo = PersonaRepository(session)
    counts = repo.device_counts(tenant_id)
    rows = repo.for_tenant(tenant_id) if tenant_id is not None else []
    return PersonaList(
        items=[_out(p, row, tenant_id, counts) for p, row in _resolved(rows)],
    )


def get_persona(session: Session, name: str, tenant_id: uuid.UUID | None) -> PersonaOut:
    """One persona as :func:`list_personas` shows it (404 if the tenant has none so named)."""
    for item in list_personas(session, tenant_id).items:
        if item.name == name:
            return item
    raise NotFound(f"no persona {name!r}")


# --- writing ------------------------------------------------------------------------------


def parse_persona(body: bytes) -> PersonaIn:
    """Validate a create-or-update body; 422 naming the field (structure, globs, rules)."""
    try:
        request = PERSONA_REQUEST.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise UnprocessableEntity(
                f"malformed JSON: {first['msg']}", code="malformed_json"
            ) from exc
        field = loc_to_field(first["loc"]) or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        raise UnprocessableEntity(message, field=field) from exc
    for i, rule in enumerate(request.rules):
        if not rule.model_dump(exclude_none=True):
            raise _invalid(f"rules[{i}]", "a rule needs at least one criterion")
        if rule.hostname is not None:
            problem = glob_error(rule.hostname)
            if problem is not None:
                raise _invalid(f"rules[{i}].hostname", f"bad glob {rule.hostname!r}: {problem}")
        if rule.tags is not None and not rule.tags:
            raise _invalid(f"rules[{i}].tags", "give at least one tag, or leave tags out")
    return request


def _definition(request: PersonaIn) -> dict[str, Any]:
    """The overrides to store: only what was given (no empty maps, no nulls)."""
    dumped = request.definition.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if v != {}}


def save_persona(session: Session, identity: Identity, body: bytes) -> tuple[PersonaOut, bool]:
    """Create or replace a tenant persona from a JSON body, reassign devices; commits.

    Admins only (checked by the router). Returns the persona and whether it was created.
    An update replaces description, base, definition, rules and priority; ``version``
    goes up only when something changed. Every device of the tenant is then reassigned
    in the same transaction.
    """
    request = parse_persona(body)
    tenant_id = target_tenant(session, identity, request.tenant_id, "define personas")
    builtins = builtin_personas()
    if request.name in builtins:
        if request.base is not None and request.base != request.name:
            raise _invalid(
                "base",
                f"{request.name!r} is a built-in: this overrides it, and extends nothing else",
                code="unknown_base",
            )
        base_name = None
    else:
        if request.base is not None and request.base not in builtins:
            raise _invalid(
                "base",
                f"unknown built-in {request.base!r}; one of {', '.join(builtins)}",
                code="unknown_base",
            )
        base_name = request.base
    base = _base_of(request.name, base_name)
    assert base is not None
    definition = _definition(request)
    apply_overrides(base, request.name, request.description, definition)  # validates
    rules = [rule.model_dump(mode="json", exclude_none=True) for rule in request.rules]
    repo = PersonaRepository(session)
    now = utcnow()
    row = repo.find(tenant_id, request.name)
    created = row is None
    try:
        if row is None:
            row = TenantPersona(
                tenant_id=tenant_id,
                name=request.name,
                description=request.description,
                definition=definition,
                base=base_name,
                rules=rules,
                priority=request.priority,
                version=1,
                created_at=now,
                updated_at=now,
            )
            repo.add(row)
        else:
            new = (request.description, base_name, definition, rules, request.priority)
            if new != (row.description, row.base, row.definition, row.rules, row.priority):
                row.description, row.base, row.definition, row.rules, row.priority = new
                row.version += 1
                row.updated_at = now
                session.flush()
        reassign_tenant(session, tenant_id)
        session.commit()
    except IntegrityError as exc:  # a concurrent create of the same name
        session.rollback()
        raise Conflict(
            f"persona {request.name!r} was created concurrently; retry",
            code="persona_exists",
            field="name",
        ) from exc
    counts = repo.device_counts(tenant_id)
    return _out(_from_row(row), row, tenant_id, counts), created


# --- assignment ---------------------------------------------------------------------------


def _candidates(rows: Iterable[TenantPersona]) -> tuple[list[Candidate], set[str]]:
    """The tenant's personas with rules, and every persona name it knows."""
    rows = list(rows)
    known = set(builtin_personas()) | {row.name for row in rows}
    candidates = [Candidate(row.name, row.priority, row.rules) for row in rows if row.rules]
    return candidates, known


def _facts(device: Any) -> DeviceFacts:
    """Assignment facts of a :class:`Device` or of a row with the same attributes."""
    return DeviceFacts(
        hostname=device.hostname,
        os=device.os,
        hardware=device.hardware or {},
        tags=device.tags or {},
        persona_hint=device.persona_hint,
        persona_override=device.persona_override,
    )


def assign_persona(session: Session, device: Device) -> None:
    """Set ``device.persona`` and ``persona_source`` from its tenant's rules (no commit)."""
    candidates, known = _candidates(PersonaRepository(session).for_tenant(device.tenant_id))
    device.persona, device.persona_source = choose_persona(
        _facts(device), candidates, known, default_persona_name()
    )


def reassign_tenant(session: Session, tenant_id: uuid.UUID) -> int:
    """Re-run assignment for every device of the tenant (no commit); returns how many changed.

    Reads only the columns assignment needs and writes the changed devices in one bulk
    UPDATE.
    """
    repo = PersonaRepository(session)
    candidates, known = _candidates(repo.for_tenant(tenant_id))
    default = default_persona_name()
    changes: list[dict[str, Any]] = []
    for row in repo.assignment_rows(tenant_id):
        persona, source = choose_persona(_facts(row), candidates, known, default)
        if (persona, source) != (row.persona, row.persona_source):
            changes.append({"id": row.id, "persona": persona, "persona_source": source})
    repo.update_assignments(changes)
    return len(changes)


def set_device_persona(
    session: Session, identity: Identity, device_id: uuid.UUID, body: bytes
) -> DevicePersonaOut:
    """Set or clear a device's manual persona override, then reassign it; commits.

    Admins and analysts (a viewer gets 403); 404 for a device the caller cannot see; 422
    for a persona the device's tenant does not know.
    """
    if identity.role not in _OVERRIDERS:
        raise Forbidden(
            "overriding a persona needs the admin or analyst role", code="role_required"
        )
    try:
        request = DEVICE_PERSONA_REQUEST.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise UnprocessableEntity(
                f"malformed JSON: {first['msg']}", code="malformed_json"
            ) from exc
        field = loc_to_field(first["loc"]) or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        raise UnprocessableEntity(message, field=field) from exc
    device = DeviceRepository(session).get(device_id, identity.visible_tenant(None))
    if device is None:
        raise NotFound(f"no device {device_id}")
    rows = PersonaRepository(session).for_tenant(device.tenant_id)
    candidates, known = _candidates(rows)
    if request.persona is not None and request.persona not in known:
        raise _invalid(
            "persona",
            f"unknown persona {request.persona!r}; one of {', '.join(sorted(known))}",
            code="unknown_persona",
        )
    device.persona_override = request.persona
    persona, source = choose_persona(_facts(device), candidates, known, default_persona_name())
    device.persona, device.persona_source = persona, source
    session.commit()
    return DevicePersonaOut(
        device_id=device.id,
        persona=persona,
        persona_source=source,
        persona_override=request.persona,
    )
