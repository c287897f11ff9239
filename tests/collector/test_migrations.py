"""Alembic migrations: they build the schema the models describe, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from collector.db import make_engine
from collector.migrate import current_revision, head_revision, upgrade
from collector.models import Base
from collector.settings import normalise_database_url


def test_migrations_match_models_and_are_idempotent(database_url: str) -> None:
    engine = make_engine(normalise_database_url(database_url))
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_0002_gives_existing_tenants_their_own_pseudonym_key(database_url: str) -> None:
    engine = make_engine(normalise_database_url(database_url))
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            for name in ("acme", "globex"):
                conn.execute(
                    sa.text("INSERT INTO tenants (id, name, created_at) VALUES (:id, :name, :now)"),
                    {"id": uuid.uuid4().hex, "name": name, "now": datetime.now(UTC)},
                )
        upgrade(engine)
        with engine.connect() as conn:
            keys = conn.execute(sa.text("SELECT pseudonym_key FROM tenants")).scalars().all()
        assert len(keys) == 2 and len(set(keys)) == 2
        assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys)
    finally:
        engine.dispose()
