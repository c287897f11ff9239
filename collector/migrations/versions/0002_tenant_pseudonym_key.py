"""tenant pseudonym key: agents hash user names with a key of their tenant

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``tenants.pseudonym_key`` and give every existing tenant its own random key."""
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("pseudonym_key", sa.String(length=64), nullable=True))
    tenants = sa.table("tenants", sa.column("id", sa.Uuid()), sa.column("pseudonym_key"))
    bind = op.get_bind()
    for (tenant_id,) in bind.execute(sa.select(tenants.c.id)).all():
        bind.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id)
            .values(pseudonym_key=secrets.token_hex(32))
        )
    with op.batch_alter_table("tenants") as batch:
        batch.alter_column("pseudonym_key", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    """Drop ``tenants.pseudonym_key``."""
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("pseudonym_key")
