"""digest renders: each digest as it was rendered for sending

Revision ID: 0003_renders
Revises: 0002_web
Create Date: 2026-11-23 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_renders"
down_revision = "0002_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_renders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("reader_kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("shown", sa.JSON(), nullable=False),
        sa.Column("shortened", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest_id", "reader_kind", name="uq_digest_render"),
    )
    op.create_index("ix_digest_renders_edition_id", "digest_renders", ["edition_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_renders_edition_id", table_name="digest_renders")
    op.drop_table("digest_renders")
