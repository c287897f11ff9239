"""Webhook use cases (create, list, delete, deliveries) and :func:`enqueue_alert_event`.

Only admins manage webhooks. A webhook's secret is generated when not given and returned
once, at creation; it is stored as given, because every delivery is signed with it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Final

from pydantic import ValidationError
from sqlalchemy.orm import Session

from collector.alerts.models import Alert
from collector.db import utcnow
from collector.devices.repository import DeviceRepository
from collector.errors import Forbidden, NotFound, UnprocessableEntity, loc_to_field
from collector.identity.roles import Identity, Role
from collector.notifications.models import NotificationDelivery, Webhook
from collector.notifications.payloads import alert_snapshot
from collector.notifications.repository import PENDING, SUPPRESSED, NotificationRepository
from collector.notifications.schemas import (
    DEFAULT_EVENTS,
    EVENTS,
    SEVERITIES,
    WEBHOOK_REQUEST,
    DeliveryList,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from collector.tenants.repository import TenantRepository

__all__ = [
    "SECRET_PREFIX",
    "create_webhook",
    "delete_webhook",
    "enqueue_alert_event",
    "list_deliveries",
    "list_webhooks",
    "new_secret",
    "severity_rank",
    "webhook_out",
]

SECRET_PREFIX: Final = "whsec_"
"""Generated secrets start with this (256 random bits follow)."""


def new_secret() -> str:
    """A new random webhook secret."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def severity_rank(severity: str | None) -> int:
    """0 (low) to 3 (critical); an unknown or missing severity ranks as low."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def _admin(identity: Identity) -> None:
    if identity.role is not Role.ADMIN:
        raise Forbidden("webhooks need the admin role", code="admin_required")


def _parse(body: bytes) -> WebhookIn:
    try:
        return WEBHOOK_REQUEST.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise UnprocessableEntity(
                f"malformed JSON: {first['msg']}", code="malformed_json"
            ) from exc
        field = loc_to_field(list(first["loc"])) or None
        message = str(first["msg"]).removeprefix("Value error, ")
        if field is None and ":" in message:
            field = message.split(":", 1)[0]
        raise UnprocessableEntity(f"{field}: {message}" if field else message, field=field) from exc


def webhook_out(webhook: Webhook) -> WebhookOut:
    """A stored webhook in its API shape (without the secret)."""
    return WebhookOut(
        id=webhook.id,
        tenant_id=webhook.tenant_id,
        name=webhook.name,
        url=webhook.url,
        kind=webhook.kind,
        min_severity=webhook.min_severity,
        events=list(webhook.events),
        project_key=webhook.project_key,
        enabled=webhook.enabled,
        created_at=webhook.created_at,
        created_by=webhook.created_by,
    )


def create_webhook(session: Session, identity: Identity, body: bytes) -> WebhookCreated:
    """Validate and store a webhook (admin only); returns it with its secret; commits."""
    _admin(identity)
    request = _parse(body)
    if identity.tenant_id is not None:
        if request.tenant_id is not None and request.tenant_id != identity.tenant_id:
            raise Forbidden(
                "this caller may only add webhooks to its own tenant",
                code="other_tenant",
                field="tenant_id",
            )
        tenant_id = identity.tenant_id
    elif request.tenant_id is None:
        raise UnprocessableEntity(
            "tenant_id: required for a caller not bound to a tenant", field="tenant_id"
        )
    elif TenantRepository(session).get(request.tenant_id) is None:
        raise UnprocessableEntity(
            f"tenant_id: no tenant {request.tenant_id}", code="unknown_tenant", field="tenant_id"
        )
    else:
        tenant_id = request.tenant_id
    secret = request.secret or new_secret()
    webhook = NotificationRepository(session).add_webhook(
        Webhook(
            tenant_id=tenant_id,
            name=request.name or None,
            url=request.url,
            kind=request.kind,
            secret=secret,
            min_severity=request.min_severity,
            events=list(request.events or DEFAULT_EVENTS[request.kind]),
            project_key=request.project_key,
            enabled=request.enabled,
            created_at=utcnow(),
            created_by=f"{identity.kind}:{identity.subject_id}",
        )
    )
    session.commit()
    return WebhookCreated(**webhook_out(webhook).model_dump(), secret=secret)


def list_webhooks(session: Session, identity: Identity, tenant: uuid.UUID | None) -> WebhookList:
    """The webhooks the (admin) caller may see, newest first."""
    _admin(identity)
    rows = NotificationRepository(session).webhooks(identity.visible_tenant(tenant))
    return WebhookList(items=[webhook_out(w) for w in rows])


def _visible(session: Session, identity: Identity, webhook_id: uuid.UUID) -> Webhook:
    _admin(identity)
    webhook = NotificationRepository(session).webhook(webhook_id, identity.tenant_id)
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return webhook


def delete_webhook(session: Session, identity: Identity, webhook_id: uuid.UUID) -> None:
    """Delete a webhook and its queued deliveries (admin only); commits."""
    webhook = _visible(session, identity, webhook_id)
    NotificationRepository(session).delete_webhook(webhook)
    session.commit()


def list_deliveries(
    session: Session, identity: Identity, webhook_id: uuid.UUID, limit: int = 100
) -> DeliveryList:
    """A webhook's most recent deliveries (admin only), newest first."""
    if not 1 <= limit <= 1000:
        raise UnprocessableEntity("limit: must be 1 to 1000", field="limit")
    webhook = _visible(session, identity, webhook_id)
    rows = NotificationRepository(session).deliveries(webhook.id, limit)
    return DeliveryList(
        items=[
            DeliveryOut(
                id=d.id,
                webhook_id=d.webhook_id,
                alert_id=d.alert_id,
                event=d.event,
                status=d.status,
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at,
                last_status=d.last_status,
                last_error=d.last_error,
                last_attempt_at=d.last_attempt_at,
                delivered_at=d.delivered_at,
                created_at=d.created_at,
            )
            for d in rows
        ]
    )


def enqueue_alert_event(session: Session, alert: Alert, event: str, *, replay: bool = False) -> int:
    """Queue ``event`` of ``alert`` for every matching webhook of the alert's tenant.

    A webhook matches when it is enabled, subscribes to ``event`` and its
    ``min_severity`` is at most the alert's severity. The alert is snapshotted now (its
    API shape), so later changes do not alter what this event says. Call it in the same
    transaction as the alert change: it flushes and never commits, so the event is queued
    if and only if the change is stored. An ``updated`` event for a webhook that still has
    an unsent ``updated`` delivery of this alert refreshes that one instead of queueing
    another (a growing alert does not flood a channel). Returns how many webhooks will get
    the event. With ``replay`` (a job re-run for a past time) the deliveries are recorded
    as ``suppressed`` and never sent.
    """
    if event not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
    repo = NotificationRepository(session)
    session.flush()  # the alert row must exist before deliveries reference it
    webhooks = [
        w
        for w in repo.enabled_webhooks(alert.tenant_id)
        if event in w.events and severity_rank(alert.severity) >= severity_rank(w.min_severity)
    ]
    if not webhooks:
        return 0
    hostnames: dict[uuid.UUID, str] = {}
    if alert.scope == "device":
        ids: list[uuid.UUID] = []
        for raw in [alert.scope_key, *alert.affected_device_ids]:
            try:
                ids.append(uuid.UUID(str(raw)))
            except ValueError:
                continue
        hostnames = DeviceRepository(repo.session).hostnames(ids)
    snapshot = alert_snapshot(alert, hostnames)
    now = utcnow()
    unsent = repo.unsent_updates(alert.id, now) if event == "updated" and not replay else {}
    for delivery in unsent.values():  # one pending update says it all
        delivery.payload = snapshot
    repo.add_deliveries(
        [
            NotificationDelivery(
                id=uuid.uuid4(),
                webhook_id=w.id,
                tenant_id=alert.tenant_id,
                alert_id=alert.id,
                event=event,
                payload=snapshot,
                status=SUPPRESSED if replay else PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for w in webhooks
            if w.id not in unsent
        ]
    )
    return len(webhooks)
