"""alert reopenings: a problem that comes back soon after it resolved reopens its alert

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``alerts.reopened_at`` and ``alerts.reopenings`` (existing alerts: never reopened)."""
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column("reopened_at", collector.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("reopenings", json, nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("reopenings")
        batch.drop_column("reopened_at")
