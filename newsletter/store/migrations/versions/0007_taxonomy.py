"""taxonomy: readers who had chosen every topic of the old default set follow every topic (new ones too)

The default topics grew from 12 (systems-heavy) to 20 (issue 11). A reader stored with an explicit list of
all the old scored topics meant "everything"; they now get NULL (every topic, including later ones), like a
reader who ticks every box today. A reader who chose some topics keeps exactly those. Stored papers need no
change here: the classifier's version is part of the settings fingerprint, so they are reclassified at the
next fetch, import, digest or `newsletter topics`.

Revision ID: 0007_taxonomy
Revises: 0006_inbound
Create Date: 2026-12-02 04:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_taxonomy"
down_revision = "0006_inbound"
branch_labels = None
depends_on = None

OLD_SCORED = frozenset({
    "llm-inference", "quantization", "training", "hardware", "architectures", "video-generation",
    "image-generation", "3d", "vision", "multimodal", "audio",
})

subscribers = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("topics", sa.JSON))


def upgrade() -> None:
    conn = op.get_bind()
    everything = [row.id for row in conn.execute(sa.select(subscribers.c.id, subscribers.c.topics))
                  if isinstance(row.topics, list) and OLD_SCORED <= set(row.topics)]
    for start in range(0, len(everything), 500):
        ids = everything[start:start + 500]
        conn.execute(subscribers.update().where(subscribers.c.id.in_(ids)).values(topics=sa.null()))


def downgrade() -> None:
    pass  # "every topic" stays "every topic": nothing to undo
