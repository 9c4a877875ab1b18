"""edition state: an edition can be paused, resumed and cancelled (issue 14)

Every existing edition is active, as before.

Revision ID: 0009_edition_state
Revises: 0008_rate_buckets
Create Date: 2026-12-02 05:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_edition_state"
down_revision = "0008_rate_buckets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, also on SQLite: a batch copy of the table would cascade-delete its deliveries.
    op.add_column("editions", sa.Column("state", sa.String(12), nullable=False, server_default="active"))


def downgrade() -> None:
    op.drop_column("editions", "state")
