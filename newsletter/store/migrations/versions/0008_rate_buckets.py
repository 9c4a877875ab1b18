"""rate buckets: the web app's rate limits, kept in the database so every worker process shares them

Revision ID: 0008_rate_buckets
Revises: 0007_taxonomy
Create Date: 2026-12-02 05:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rate_buckets"
down_revision = "0007_taxonomy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_buckets_at", "rate_buckets", ["at"])


def downgrade() -> None:
    op.drop_index("ix_rate_buckets_at", table_name="rate_buckets")
    op.drop_table("rate_buckets")
