"""xlas: XLA definitions, their versions and their evaluations per period

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``xla_definitions``, ``xla_definition_versions`` and ``xla_evaluations``."""
    op.create_table(
        "xla_definitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_xla_definitions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xla_definitions")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_xla_definitions_tenant_id_name")),
    )
    op.create_table(
        "xla_definition_versions",
        sa.Column("definition_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["xla_definitions.id"],
            name=op.f("fk_xla_definition_versions_definition_id_xla_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "definition_id", "version", name=op.f("pk_xla_definition_versions")
        ),
    )
    op.create_table(
        "xla_evaluations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("definition_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("figures", _json(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("computed_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["xla_definitions.id"],
            name=op.f("fk_xla_evaluations_definition_id_xla_definitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_xla_evaluations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xla_evaluations")),
        sa.UniqueConstraint(
            "definition_id", "period", name=op.f("uq_xla_evaluations_definition_id_period")
        ),
    )
    op.create_index("ix_xla_evaluations_tenant_period", "xla_evaluations", ["tenant_id", "period"])


def downgrade() -> None:
    """Drop the XLA tables."""
    op.drop_index("ix_xla_evaluations_tenant_period", table_name="xla_evaluations")
    op.drop_table("xla_evaluations")
    op.drop_table("xla_definition_versions")
    op.drop_table("xla_definitions")
