"""scores: daily device and (device, app) rollups, and the scoring job's watermark

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create ``device_day_scores``, ``device_app_days`` and ``scoring_watermarks``."""
    op.create_table(
        "device_day_scores",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("startup", sa.Float(), nullable=True),
        sa.Column("responsiveness", sa.Float(), nullable=True),
        sa.Column("stability", sa.Float(), nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=True),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("points_lost", _json(), nullable=False),
        sa.Column("sentiment_confidence", sa.Float(), nullable=True),
        sa.Column("active_s", sa.Float(), nullable=False),
        sa.Column("time_lost_min", sa.Float(), nullable=False),
        sa.Column("time_lost", _json(), nullable=False),
        sa.Column("counts", _json(), nullable=False),
        sa.Column("scoring_version", sa.Integer(), nullable=False),
        sa.Column("computed_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        _fk("device_day_scores", "device_id", "devices"),
        _fk("device_day_scores", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("device_id", "day", name=op.f("pk_device_day_scores")),
    )
    op.create_index("ix_device_day_scores_tenant_day", "device_day_scores", ["tenant_id", "day"])
    op.create_table(
        "device_app_days",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("app_name", sa.String(length=256), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("persona", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("hangs", sa.Integer(), nullable=False),
        sa.Column("crashes", sa.Integer(), nullable=False),
        sa.Column("time_lost_min", sa.Float(), nullable=False),
        _fk("device_app_days", "device_id", "devices"),
        _fk("device_app_days", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("device_id", "day", "app_name", name=op.f("pk_device_app_days")),
    )
    op.create_index("ix_device_app_days_tenant_day", "device_app_days", ["tenant_id", "day"])
    op.create_table(
        "scoring_watermarks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("received_through", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("as_of", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        _fk("scoring_watermarks", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_scoring_watermarks")),
    )


def downgrade() -> None:
    """Drop the score tables."""
    op.drop_table("scoring_watermarks")
    op.drop_index("ix_device_app_days_tenant_day", table_name="device_app_days")
    op.drop_table("device_app_days")
    op.drop_index("ix_device_day_scores_tenant_day", table_name="device_day_scores")
    op.drop_table("device_day_scores")
