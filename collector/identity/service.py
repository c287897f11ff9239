"""Identity use cases: API keys, users, dashboard sign-in with lock-out."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.errors import Conflict, NotFound, Unauthorized, UnprocessableEntity
from collector.identity.models import ApiKey, User, UserSession
from collector.identity.repository import IdentityRepository
from collector.identity.roles import Identity, Role
from collector.security import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from collector.tenants.repository import TenantRepository

__all__ = [
    "LOCKOUT_AFTER_FAILURES",
    "LOCKOUT_FOR",
    "SESSION_TTL",
    "authenticate_api_key",
    "authenticate_session",
    "create_api_key",
    "create_user",
    "sign_in",
    "sign_out",
]

SESSION_TTL = timedelta(hours=12)
LOCKOUT_AFTER_FAILURES = 5
LOCKOUT_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_binding(session: Session, role: Role, tenant_id: uuid.UUID | None) -> None:
    if role is Role.VIEWER and tenant_id is None:
        raise UnprocessableEntity("a viewer must be bound to one tenant (--tenant)", field="tenant")
    if tenant_id is not None and TenantRepository(session).get(tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id}", field="tenant")


def create_api_key(
    session: Session, role: Role, tenant_id: uuid.UUID | None, name: str = ""
) -> str:
    """Create an API key and return it in clear (shown once, stored hashed); commits."""
    _check_binding(session, role, tenant_id)
    key = new_token(API_KEY_PREFIX)
    IdentityRepository(session).add(
        ApiKey(key_hash=hash_token(key), role=role.value, tenant_id=tenant_id, name=name)
    )
    session.commit()
    return key


def create_user(
    session: Session, email: str, password: str, role: Role, tenant_id: uuid.UUID | None
) -> uuid.UUID:
    """Create a dashboard login; commits. Passwords shorter than 12 characters are refused."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UnprocessableEntity(f"{email!r} is not an e-mail address", field="email")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UnprocessableEntity(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    _check_binding(session, role, tenant_id)
    repo = IdentityRepository(session)
    if repo.user_by_email(email) is not None:
        raise Conflict(f"a user {email} already exists", code="user_exists")
    user = User(
        email=email, password_hash=hash_password(password), role=role.value, tenant_id=tenant_id
    )
    repo.add(user)
    session.commit()
    return user.id


def authenticate_api_key(session: Session, key: str) -> Identity:
    """The identity of an API key; :class:`Unauthorized` when unknown or revoked."""
    row = IdentityRepository(session).api_key_by_hash(hash_token(key))
    if row is None:
        raise Unauthorized("unknown API key", code="invalid_api_key")
    if row.revoked_at is not None:
        raise Unauthorized("this API key was revoked", code="api_key_revoked")
    return Identity("api_key", row.id, Role(row.role), row.tenant_id)


def sign_in(session: Session, email: str, password: str) -> str:
    """Check a password and open a dashboard session; returns the cookie secret.

    After :data:`LOCKOUT_AFTER_FAILURES` wrong passwords the account is locked for
    :data:`LOCKOUT_FOR`; the message does not tell whether the e-mail exists.
    """
    repo = IdentityRepository(session)
    user = repo.user_by_email(email.strip())
    now = utcnow()
    if user is None:
        raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
    if user.locked_until is not None and user.locked_until > now:
        raise Unauthorized("too many failed sign-ins; try again later", code="account_locked")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER_FAILURES:
            user.locked_until = now + LOCKOUT_FOR
            user.failed_logins = 0
        session.commit()
        raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
    user.failed_logins = 0
    user.locked_until = None
    secret = new_token(SESSION_PREFIX)
    repo.add(
        UserSession(user_id=user.id, token_hash=hash_token(secret), expires_at=now + SESSION_TTL)
    )
    session.commit()
    return secret


def authenticate_session(session: Session, secret: str) -> Identity:
    """The identity behind a dashboard session cookie."""
    found = IdentityRepository(session).session_by_hash(hash_token(secret))
    if found is None or found[0].expires_at <= utcnow():
        raise Unauthorized("session expired; sign in again", code="session_expired")
    user = found[1]
    return Identity("user", user.id, Role(user.role), user.tenant_id)


def sign_out(session: Session, secret: str) -> None:
    """End a dashboard session (no error if it is already gone)."""
    repo = IdentityRepository(session)
    found = repo.session_by_hash(hash_token(secret))
    if found is not None:
        repo.delete_session(found[0])
        session.commit()
