"""Alembic migration scripts of the collector schema."""

__all__: list[str] = []
