"""API shapes of webhooks and their deliveries.

A webhook is ``{url, kind, secret?, min_severity?, events?, project_key?, enabled, name?}``
(plus ``tenant_id`` for MSP-wide callers). ``url`` must be ``https://``, except on loopback
(``http://127.0.0.1``, ``http://[::1]``, ``http://localhost``) for tests and on-prem
relays. ``events`` defaults to every event for ``generic``, ``slack`` and ``teams``, and to
``["opened"]`` for ``servicenow`` and ``jira`` (their payloads create a record).
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_EVENTS",
    "EVENTS",
    "KINDS",
    "SEVERITIES",
    "WEBHOOK_REQUEST",
    "DeliveryList",
    "DeliveryOut",
    "WebhookCreated",
    "WebhookIn",
    "WebhookList",
    "WebhookOut",
    "check_webhook_url",
]

EVENTS: Final = ("opened", "updated", "reopened", "resolved", "acknowledged")
"""What can happen to an alert, as sent in ``X-DexScope-Event``."""
KINDS: Final = ("generic", "slack", "teams", "servicenow", "jira")
"""Payload shapes a webhook can ask for."""
SEVERITIES: Final = ("low", "medium", "high", "critical")
"""Alert severities, lowest first (``min_severity`` keeps this one and those above)."""
DEFAULT_EVENTS: Final = {
    "generic": EVENTS,
    "slack": EVENTS,
    "teams": EVENTS,
    "servicenow": ("opened",),
    "jira": ("opened",),
}
"""The events a webhook gets when it names none."""

_LOOPBACK_NAMES: Final = frozenset({"localhost"})

Kind = Literal["generic", "slack", "teams", "servicenow", "jira"]
Severity = Literal["low", "medium", "high", "critical"]
Event = Literal["opened", "updated", "reopened", "resolved", "acknowledged"]


def _is_loopback(host: str) -> bool:
    if host.casefold() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute ``https`` URL (``http`` only to a loopback host);
    ValueError otherwise."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError("must use https:// (plain http is allowed only to 127.0.0.1/localhost)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return url


class WebhookIn(BaseModel):
    """``POST /api/v1/webhooks``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
    kind: Kind
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = None
    """The HMAC key deliveries are signed with; generated (and shown once) when omitted."""
    min_severity: Severity | None = None
    events: Annotated[list[Event], Field(min_length=1, max_length=5)] | None = None
    project_key: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")] | None = None
    """Jira only (required there): the key of the project issues are created in."""
    enabled: bool = True
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    tenant_id: uuid.UUID | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_webhook_url(value)

    @model_validator(mode="after")
    def _project_key(self) -> WebhookIn:
        if self.kind == "jira" and self.project_key is None:
            raise ValueError("project_key: required for a jira webhook")
        if self.kind != "jira" and self.project_key is not None:
            raise ValueError("project_key: only for a jira webhook")
        return self


WEBHOOK_REQUEST: TypeAdapter[WebhookIn] = TypeAdapter(WebhookIn)
"""Validator (and JSON Schema) of the create request."""


class WebhookOut(BaseModel):
    """A stored webhook (never its secret)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str | None
    url: str
    kind: str
    min_severity: str | None
    events: list[str]
    project_key: str | None
    enabled: bool
    created_at: datetime
    created_by: str | None


class WebhookCreated(WebhookOut):
    """The answer to a create: the webhook and its secret, shown this once."""

    secret: str


class WebhookList(BaseModel):
    """The webhooks visible to the caller, newest first."""

    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One queued or finished delivery of an alert event to a webhook."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    alert_id: uuid.UUID
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    """A webhook's most recent deliveries, newest first."""

    items: list[DeliveryOut]
