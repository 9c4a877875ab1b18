"""inbound events: bounces, complaints and unsubscribe requests read from the mailbox or webhooks

Revision ID: 0006_inbound
Revises: 0005_fetch_days
Create Date: 2026-12-02 04:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_inbound"
down_revision = "0005_fetch_days"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("feedback_type", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("original_message_id", sa.String(length=300), nullable=True),
        sa.Column("effect", sa.String(length=30), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key"),
    )
    op.create_index("ix_inbound_events_subscriber", "inbound_events", ["subscriber_id", "kind"])
    op.create_index("ix_inbound_events_kind", "inbound_events", ["kind"])
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])
    # A bounce or complaint names the Message-ID we sent: find its delivery without a table scan.
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.drop_index("ix_inbound_events_received_at", table_name="inbound_events")
    op.drop_index("ix_inbound_events_kind", table_name="inbound_events")
    op.drop_index("ix_inbound_events_subscriber", table_name="inbound_events")
    op.drop_table("inbound_events")
