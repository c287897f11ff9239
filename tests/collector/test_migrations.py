"""Alembic migrations: they build the schema the models describe, on both backends."""

from __future__ import annotations

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
