"""survey campaigns: IT's micro-survey campaigns, per tenant

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``survey_campaigns`` (keyed by tenant and the agent-visible campaign id)."""
    op.create_table(
        "survey_campaigns",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("question", _json(), nullable=False),
        sa.Column("trigger", _json(), nullable=False),
        sa.Column("targeting", _json(), nullable=False),
        sa.Column("starts_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", collector.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("expires_after_s", sa.Float(), nullable=False),
        sa.Column("created_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_survey_campaigns_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_survey_campaigns")),
    )


def downgrade() -> None:
    """Drop ``survey_campaigns``."""
    op.drop_table("survey_campaigns")
