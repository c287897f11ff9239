"""personas: tenant persona definitions, and the persona assigned to each device

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import collector.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUILTIN_NAMES = (
    "knowledge_worker",
    "developer",
    "contact_centre_agent",
    "field_worker",
    "executive",
)
"""The built-in personas when this revision was written (a migration must not follow code
changes, so the names are repeated here rather than imported)."""
_DEFAULT = "knowledge_worker"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``personas``; add the persona columns to ``devices`` and fill them.

    Existing devices get their persona hint when it names a built-in, else the default
    persona: what the rules would give, since no tenant has personas (or rules) yet.
    """
    op.create_table(
        "personas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("base", sa.String(length=64), nullable=True),
        sa.Column("rules", _json(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", collector.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_personas_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personas")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_personas_tenant_id_name")),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("persona", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("persona_source", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("persona_override", sa.String(length=64), nullable=True))
        batch.create_index("ix_devices_tenant_persona", ["tenant_id", "persona"], unique=False)
    devices = sa.table(
        "devices",
        sa.column("persona_hint", sa.String()),
        sa.column("persona", sa.String()),
        sa.column("persona_source", sa.String()),
    )
    hinted = devices.c.persona_hint.in_(_BUILTIN_NAMES)
    op.execute(
        devices.update().where(hinted).values(persona=devices.c.persona_hint, persona_source="hint")
    )
    op.execute(
        devices.update()
        .where(sa.or_(devices.c.persona_hint.is_(None), sa.not_(hinted)))
        .values(persona=_DEFAULT, persona_source="default")
    )


def downgrade() -> None:
    """Drop the device persona columns and ``personas``."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_tenant_persona")
        batch.drop_column("persona_override")
        batch.drop_column("persona_source")
        batch.drop_column("persona")
    op.drop_table("personas")
