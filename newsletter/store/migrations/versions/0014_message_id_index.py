"""drop ix_deliveries_message_id: bounces that quote a Message-ID are matched through (edition_id,
subscriber_id), which our ids name, and the unique index on that pair; the message_id index was the largest
index of deliveries (361 MB after two 800,000-reader editions) and about 6 s of each such edition's record
(issue 12)

Revision ID: 0014_message_id_index
Revises: 0013_relevance
Create Date: 2026-12-02 14:10:00
"""

from alembic import op

revision = "0014_message_id_index"
down_revision = "0013_relevance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
