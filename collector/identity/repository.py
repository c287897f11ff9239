"""SQL for API keys, users and dashboard sessions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.identity.models import ApiKey, User, UserSession

__all__ = ["IdentityRepository"]


class IdentityRepository:
    """Reads and writes API keys, users and sessions."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: ApiKey | User | UserSession) -> None:
        """Stage a new row."""
        self.session.add(row)
        self.session.flush()

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The API key with this hash, if any."""
        return self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    def user_by_email(self, email: str) -> User | None:
        """The user with this e-mail (case-insensitive, stored lower-case)."""
        return self.session.scalar(select(User).where(User.email == email.lower()))

    def session_by_hash(self, token_hash: str) -> tuple[UserSession, User] | None:
        """A dashboard session and its user, by the hash of the cookie secret."""
        row = self.session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == token_hash)
        ).first()
        return (row[0], row[1]) if row else None

    def delete_session(self, user_session: UserSession) -> None:
        """Remove a dashboard session (sign-out)."""
        self.session.delete(user_session)
