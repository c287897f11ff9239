"""alerts: degradations found by detection, with evidence and the suspected change

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``alerts``."""
    ts = collector.db.UTCDateTime(timezone=True)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("scope_key", sa.String(length=400), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("onset", ts, nullable=False),
        sa.Column("detected_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("resolved_at", ts, nullable=True),
        sa.Column("acknowledged_at", ts, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.Column("affected_device_ids", _json(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("current", sa.Float(), nullable=True),
        sa.Column("effect_size", sa.Float(), nullable=True),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("suspected_change", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_alerts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_tenant_status", "alerts", ["tenant_id", "status"])
    op.create_index("ix_alerts_tenant_fingerprint", "alerts", ["tenant_id", "fingerprint"])


def downgrade() -> None:
    """Drop ``alerts``."""
    op.drop_index("ix_alerts_tenant_fingerprint", table_name="alerts")
    op.drop_index("ix_alerts_tenant_status", table_name="alerts")
    op.drop_table("alerts")
