"""digests: the papers the email lists, the only ones recorded as sent

Revision ID: 0004_listed
Revises: 0003_renders
Create Date: 2026-12-02 04:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_listed"
down_revision = "0003_renders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for digests recorded before: then every paper of the digest counts as listed, as it did.
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("listed_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("listed_ids")
