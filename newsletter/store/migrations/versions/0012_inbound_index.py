"""index inbound_events.delivery_id: the reports join on it, and deleting a delivery (erasure) must not scan
every event to null the reference (issue 14)

Revision ID: 0012_inbound_index
Revises: 0011_scaleplan
Create Date: 2026-12-02 12:40:00
"""

from alembic import op

revision = "0012_inbound_index"
down_revision = "0011_scaleplan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_events_delivery", "inbound_events", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_delivery", table_name="inbound_events")
