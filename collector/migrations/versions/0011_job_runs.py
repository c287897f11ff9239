"""job runs: one row per job per `collector jobs` run, read by /metrics

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import collector.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``job_runs``."""
    ts = collector.db.UTCDateTime(timezone=True)
    op.create_table(
        "job_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("as_of", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_name_finished", "job_runs", ["name", "finished_at"])


def downgrade() -> None:
    """Drop ``job_runs``."""
    op.drop_index("ix_job_runs_name_finished", table_name="job_runs")
    op.drop_table("job_runs")
