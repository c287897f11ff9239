"""score measures: raw daily measures beside the scores (durations, pressure, disk use)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:10:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Add ``device_day_scores.measures`` (rows scored before get ``{}`` until rescored)."""
    with op.batch_alter_table("device_day_scores") as batch:
        batch.add_column(sa.Column("measures", _json(), nullable=False, server_default="{}"))


def downgrade() -> None:
    """Drop ``device_day_scores.measures``."""
    with op.batch_alter_table("device_day_scores") as batch:
        batch.drop_column("measures")
