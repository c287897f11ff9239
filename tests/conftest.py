"""Shared fixtures: the databases every collector test runs on.

``database_url`` is parametrised over SQLite (a real file) and PostgreSQL (a fresh
database per test on the server named by ``DEXSCOPE_TEST_POSTGRES_URL``). Outside CI a
missing PostgreSQL skips those cases with one line; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import postgres_database

_PG_ENV = "DEXSCOPE_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str:
    from collector.settings import normalise_database_url

    url = os.environ.get(_PG_ENV)
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not url:
        if in_ci:
            pytest.fail(f"{_PG_ENV} is not set, and PostgreSQL tests are required in CI")
        pytest.skip(f"PostgreSQL tests need {_PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    url = normalise_database_url(url)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL at {_PG_ENV} is unreachable: {str(exc).splitlines()[0]}"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not yet migrated) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collector.db'}"
    else:
        with postgres_database(_postgres_admin_url()) as url:
            yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url``, shared by one test module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'collector.db'}"
    else:
        with postgres_database(_postgres_admin_url()) as url:
            yield url
