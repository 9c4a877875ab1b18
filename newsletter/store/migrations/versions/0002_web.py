"""web: consent records and the confirmation-email window

Revision ID: 0002_web
Revises: 0001
Create Date: 2026-11-23 13:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_web"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("confirmation_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("form_version", sa.String(length=40), nullable=True),
        sa.Column("cadence", sa.String(length=10), nullable=True),
        sa.Column("topics", sa.JSON(), nullable=True),
        sa.Column("excluded_keywords", sa.JSON(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_ip", sa.String(length=64), nullable=True),
        sa.Column("confirm_user_agent", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consents_subscriber_id", "consents", ["subscriber_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_consents_subscriber_id", table_name="consents")
    op.drop_table("consents")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("confirmation_sent_at")
