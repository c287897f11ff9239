"""Device use cases: enrollment, device authentication, inventory."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.devices.agent_config import DEFAULT_SURVEY_SETTINGS, effective_agent_config
from collector.devices.models import Device, DeviceToken
from collector.devices.repository import DeviceRepository
from collector.devices.schemas import (
    ENROLL_REQUEST,
    DeviceDetail,
    DeviceOut,
    DevicePage,
    EventOut,
    EventPage,
    EventTypeSummary,
)
from collector.errors import NotFound, Unauthorized, UnprocessableEntity, loc_to_field
from collector.personas.service import assign_persona
from collector.security import DEVICE_TOKEN_PREFIX, hash_token, new_token
from collector.settings import Settings
from collector.surveys import service as surveys
from collector.tenants.repository import TenantRepository
from dexscope.wire import EVENT_TYPES

__all__ = [
    "agent_config_for",
    "authenticate_device",
    "device_detail",
    "device_events",
    "enroll",
    "list_devices",
]


def enroll(session: Session, body: bytes, settings: Settings) -> dict[str, object]:
    """Enroll a device with a tenant's enrollment token; commits.

    Returns the device id, its new token (shown once, stored hashed) and its configuration.
    """
    try:
        request = ENROLL_REQUEST.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = loc_to_field(first["loc"]) or None
        if first["type"] == "json_invalid":
            raise UnprocessableEntity(
                f"malformed JSON: {first['msg']}", code="malformed_json"
            ) from exc
        raise UnprocessableEntity(f"{field}: {first['msg']}", field=field) from exc
    tenants = TenantRepository(session)
    token = tenants.enrollment_token_by_hash(hash_token(request["enrollment_token"]))
    now = utcnow()
    if token is None or token.revoked_at is not None:
        raise Unauthorized("unknown or revoked enrollment token", code="invalid_enrollment_token")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized("this enrollment token has expired", code="enrollment_token_expired")
    tenant = tenants.get(token.tenant_id)
    assert tenant is not None
    device_token = new_token(DEVICE_TOKEN_PREFIX)
    ttl = settings.device_token_ttl_days
    device = Device(
        tenant_id=tenant.id,
        hostname=request["hostname"],
        os=request["os"],
        os_version=request["os_version"],
        hardware=dict(request["hardware"]),
        agent_version=request["agent_version"],
        persona_hint=request.get("persona_hint"),
        tags=dict(request.get("tags") or {}),
        enrolled_at=now,
    )
    assign_persona(session, device)
    DeviceRepository(session).add(
        device,
        DeviceToken(
            token_hash=hash_token(device_token),
            expires_at=now + timedelta(days=ttl) if ttl else None,
        ),
    )
    token.uses += 1
    session.commit()
    return {
        "device_id": device.id,
        "device_token": device_token,
        "config": agent_config_for(session, device),
    }


def authenticate_device(session: Session, token: str) -> Device:
    """The device a bearer token belongs to; :class:`Unauthorized` if it is not valid now."""
    found = DeviceRepository(session).token_with_device(hash_token(token))
    if found is None:
        raise Unauthorized("unknown device token", code="invalid_device_token")
    device_token, device = found
    if device_token.revoked_at is not None:
        raise Unauthorized("this device token was revoked", code="device_token_revoked")
    if device_token.expires_at is not None and device_token.expires_at <= utcnow():
        raise Unauthorized("this device token has expired", code="device_token_expired")
    return device


def agent_config_for(session: Session, device: Device) -> dict[str, object]:
    """The configuration that applies to ``device`` now.

    The tenant's settings, plus the survey campaigns running now that target this device
    (``campaigns``) and, in ``surveys.last_prompt_at``, when the device last showed a
    prompt its user saw (ISO 8601 or None), so that a re-installed agent keeps the gap.
    """
    tenant = TenantRepository(session).get(device.tenant_id)
    if tenant is None:
        config = effective_agent_config(None)
    else:
        config = effective_agent_config(tenant.agent_config, tenant.pseudonym_key)
    config["campaigns"] = surveys.agent_campaigns(session, device)
    if not isinstance(config.get("surveys"), dict):  # a tenant override replaced the table
        config["surveys"] = copy.deepcopy(DEFAULT_SURVEY_SETTINGS)
    last = surveys.last_prompt_at(session, device)
    config["surveys"]["last_prompt_at"] = last.isoformat() if last is not None else None
    return config


def _out(device: Device) -> dict[str, object]:
    return {
        "id": device.id,
        "tenant_id": device.tenant_id,
        "hostname": device.hostname,
        "os": device.os,
        "os_version": device.os_version,
        "agent_version": device.agent_version,
        "persona": device.persona,
        "persona_source": device.persona_source,
        "tags": device.tags,
        "hardware": device.hardware,
        "enrolled_at": device.enrolled_at,
        "last_seen_at": device.last_seen_at,
        "score": None,
    }


def list_devices(
    session: Session, tenant_id: uuid.UUID | None, *, limit: int, offset: int
) -> DevicePage:
    """A page of the inventory visible to the caller."""
    devices, total = DeviceRepository(session).page(tenant_id, limit=limit, offset=offset)
    return DevicePage(
        items=[DeviceOut.model_validate(_out(d)) for d in devices],
        total=total,
        limit=limit,
        offset=offset,
    )


def device_detail(
    session: Session, device_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> DeviceDetail:
    """One device with the count and newest time of each event type it sent."""
    repo = DeviceRepository(session)
    device = repo.get(device_id, tenant_id)
    if device is None:
        raise NotFound(f"no device {device_id}")
    summary = {
        kind: EventTypeSummary(count=count, last_ts=last)
        for kind, (count, last) in repo.event_summary(device.id).items()
    }
    return DeviceDetail.model_validate({**_out(device), "events": summary})


def device_events(
    session: Session,
    device_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    *,
    event_type: str | None,
    after: int,
    limit: int,
) -> EventPage:
    """A page of one device's raw events."""
    if event_type is not None and event_type not in EVENT_TYPES:
        raise UnprocessableEntity(f"unknown event type {event_type!r}", field="type")
    repo = DeviceRepository(session)
    if repo.get(device_id, tenant_id) is None:
        raise NotFound(f"no device {device_id}")
    rows = repo.events(device_id, event_type=event_type, after_id=after, limit=limit)
    items = [
        EventOut(
            id=r.id,
            event_id=r.event_id,
            type=r.type,
            ts=r.ts,
            received_at=r.received_at,
            data=r.data,
        )
        for r in rows
    ]
    return EventPage(items=items, next_after=items[-1].id if len(items) == limit else None)
