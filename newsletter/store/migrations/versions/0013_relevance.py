"""reader signals and per-reader relevance models (issue 15): ``reader_signals`` (one current signal per
reader and paper: more, fewer, click, seed) and ``reader_models`` (the model bytes and the signal version they
were trained on).

Revision ID: 0013_relevance
Revises: 0012_inbound_index
Create Date: 2026-12-02 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_relevance"
down_revision = "0012_inbound_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reader_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["paper_id"], ["papers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "paper_id", name="uq_reader_signal"),
    )
    op.create_index("ix_reader_signals_paper", "reader_signals", ["paper_id"])
    op.create_table(
        "reader_models",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("signals_version", sa.Integer(), nullable=False),
        sa.Column("trained_version", sa.Integer(), nullable=False),
        sa.Column("signal_count", sa.Integer(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id"),
    )
    op.create_index("ix_reader_models_stale", "reader_models", ["trained_version", "signals_version"])


def downgrade() -> None:
    op.drop_index("ix_reader_models_stale", table_name="reader_models")
    op.drop_table("reader_models")
    op.drop_index("ix_reader_signals_paper", table_name="reader_signals")
    op.drop_table("reader_signals")
