"""deliveries.smtp_ms: each sent message's SMTP exchange time, from the connection (or, on a reused one, MAIL
FROM) to the server's final reply, in milliseconds; NULL for messages sent before it was recorded, and by the
transports that have no SMTP exchange (outbox, console). The report's per-domain median and p95 come from it
(issue 14).

Revision ID: 0015_smtp_time
Revises: 0014_message_id_index
Create Date: 2026-12-02 18:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_smtp_time"
down_revision = "0014_message_id_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (nullable, no default): no table rewrite, whatever its size.
    op.add_column("deliveries", sa.Column("smtp_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("smtp_ms")
