"""campaign min_responses: the fewest answers before a campaign's results are shown

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``survey_campaigns.min_responses`` (existing campaigns get the default, 5)."""
    with op.batch_alter_table("survey_campaigns") as batch:
        batch.add_column(
            sa.Column("min_responses", sa.Integer(), nullable=False, server_default="5")
        )


def downgrade() -> None:
    """Drop ``survey_campaigns.min_responses``."""
    with op.batch_alter_table("survey_campaigns") as batch:
        batch.drop_column("min_responses")
