"""listing days: which days of a dated source were read, and which are known complete; withdrawn papers

Revision ID: 0005_fetch_days
Revises: 0004_listed
Create Date: 2026-12-02 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_fetch_days"
down_revision = "0004_listed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("papers") as batch:
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "listing_days",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("papers", sa.Integer(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "day"),
    )


def downgrade() -> None:
    op.drop_table("listing_days")
    with op.batch_alter_table("papers") as batch:
        batch.drop_column("withdrawn_at")
