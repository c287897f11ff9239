"""Database plumbing: the declarative base, column types, engine and session factories.

Nothing here connects at import time: :func:`make_engine` is called by the app's lifespan
and by the CLI commands.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Request
from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

__all__ = [
    "IN_CHUNK",
    "Base",
    "BigIntPK",
    "JSONType",
    "SessionDep",
    "UTCDateTime",
    "chunks",
    "get_session",
    "make_engine",
    "make_sessionmaker",
    "new_uuid",
    "utcnow",
]

_T = TypeVar("_T")

IN_CHUNK: Final = 500
"""Values per ``IN (…)`` list: well under both backends' bound-parameter limits."""


def chunks(items: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    """``items`` in lists of at most ``size`` (for ``IN`` lists and multi-row statements)."""
    batch = list(items)
    for i in range(0, len(batch), size):
        yield batch[i : i + size]


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every collector table (stable constraint names for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL."""

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit surrogate key that is also SQLite's auto-incrementing rowid."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    """A random UUID (version 4)."""
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no timezone type; normalising to UTC on the way in and tagging UTC on the
    way out gives the same behaviour on SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Reject naive datetimes; convert aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return UTC-aware datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL mode, a busy timeout and FK checks."""
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """The session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, closed afterwards."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
"""A request-scoped SQLAlchemy session."""
