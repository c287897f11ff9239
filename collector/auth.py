"""Authentication dependencies: ``CurrentDevice`` (agents) and ``CurrentIdentity`` (people).

Routes declare what they need with these ``Annotated`` types; no route parses credentials.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from collector.db import SessionDep
from collector.devices.models import Device
from collector.devices.service import authenticate_device
from collector.errors import Forbidden, Unauthorized
from collector.identity.roles import Identity, Role
from collector.identity.service import authenticate_api_key, authenticate_session
from collector.security import API_KEY_PREFIX, DEVICE_TOKEN_PREFIX

__all__ = [
    "SESSION_COOKIE",
    "AdminIdentity",
    "CurrentDevice",
    "CurrentIdentity",
    "bearer_token",
]

SESSION_COOKIE = "dexscope_session"


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if present."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Authorization header must be 'Bearer <token>'", code="bad_authorization"
        )
    return token.strip()


def _current_device(request: Request, session: SessionDep) -> Device:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("a device token is required", code="missing_token")
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        raise Unauthorized("this route takes a device token", code="invalid_device_token")
    return authenticate_device(session, token)


def _current_identity(request: Request, session: SessionDep) -> Identity:
    token = bearer_token(request)
    if token is not None:
        if not token.startswith(API_KEY_PREFIX):
            raise Unauthorized("this route takes an API key", code="invalid_api_key")
        return authenticate_api_key(session, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return authenticate_session(session, cookie)
    raise Unauthorized("an API key or a dashboard session is required", code="missing_token")


def _admin_identity(identity: Annotated[Identity, Depends(_current_identity)]) -> Identity:
    if identity.role is not Role.ADMIN:
        raise Forbidden("this needs the admin role", code="admin_required")
    return identity


CurrentDevice = Annotated[Device, Depends(_current_device)]
"""The enrolled device whose token authenticated this request."""

CurrentIdentity = Annotated[Identity, Depends(_current_identity)]
"""The person or integration calling (API key or dashboard session)."""

AdminIdentity = Annotated[Identity, Depends(_admin_identity)]
"""Like :data:`CurrentIdentity`, but only admins pass."""
