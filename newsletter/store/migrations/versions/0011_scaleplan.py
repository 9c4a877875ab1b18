"""render bodies: each distinct rendered email stored once, compressed (issue 12)

``digest_renders`` kept the whole subject, HTML and text of every (digest, reader kind): about 47 KB a row.
Now a render points at a ``render_bodies`` row (zlib-compressed JSON, unique by its SHA-256), shared by every
render with the same content. Existing renders are moved into bodies, then the old columns are dropped.

Revision ID: 0011_scaleplan
Revises: 0010_obsdkim
Create Date: 2026-12-02 07:20:00
"""

import hashlib
import json
import zlib

import sqlalchemy as sa
from alembic import op

revision = "0011_scaleplan"
down_revision = "0010_obsdkim"
branch_labels = None
depends_on = None

FIELDS = ("subject", "html", "text", "preheader", "slots", "shown", "shortened")


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    op.create_table(
        "render_bodies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    op.add_column("digest_renders", sa.Column("body_id", sa.Integer(), nullable=True))
    conn = op.get_bind()
    bodies: dict[str, int] = {}
    rows = conn.execute(sa.text("SELECT id, subject, html, text, preheader, slots, shown, shortened "
                                "FROM digest_renders ORDER BY id")).all()
    for row in rows:  # editions made before: a few renders each
        fields = {"subject": row.subject, "html": row.html, "text": row.text, "preheader": row.preheader,
                  "slots": _json(row.slots) or {}, "shown": _json(row.shown) or {}, "shortened": bool(row.shortened)}
        raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        key = hashlib.sha256(raw).hexdigest()
        if key not in bodies:
            data = zlib.compress(raw, 6)
            conn.execute(sa.text("INSERT INTO render_bodies (sha256, data, size) VALUES (:k, :d, :n)"),
                         {"k": key, "d": data, "n": len(data)})
            bodies[key] = conn.execute(sa.text("SELECT id FROM render_bodies WHERE sha256 = :k"), {"k": key}).scalar_one()
        conn.execute(sa.text("UPDATE digest_renders SET body_id = :b WHERE id = :i"), {"b": bodies[key], "i": row.id})
    # digest_renders is referenced by no other table, so SQLite's batch copy of it cascades nothing.
    with op.batch_alter_table("digest_renders") as batch:
        batch.alter_column("body_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_digest_renders_body", "render_bodies", ["body_id"], ["id"])
        for name in FIELDS:
            batch.drop_column(name)
    op.create_index("ix_digest_renders_body_id", "digest_renders", ["body_id"])


def downgrade() -> None:
    with op.batch_alter_table("digest_renders") as batch:
        batch.add_column(sa.Column("subject", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("html", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("text", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("preheader", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("slots", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("shown", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("shortened", sa.Boolean(), nullable=False, server_default=sa.false()))
    conn = op.get_bind()
    for rid, data in conn.execute(sa.text("SELECT r.id, b.data FROM digest_renders r "
                                          "JOIN render_bodies b ON b.id = r.body_id")).all():
        body = json.loads(zlib.decompress(data))
        conn.execute(sa.text("UPDATE digest_renders SET subject = :subject, html = :html, text = :text, "
                             "preheader = :preheader, slots = :slots, shown = :shown, shortened = :shortened "
                             "WHERE id = :id"),
                     {**{k: body[k] for k in ("subject", "html", "text", "preheader")},
                      "slots": json.dumps(body["slots"]), "shown": json.dumps(body["shown"]),
                      "shortened": bool(body["shortened"]), "id": rid})
    op.drop_index("ix_digest_renders_body_id", table_name="digest_renders")
    with op.batch_alter_table("digest_renders") as batch:
        batch.drop_constraint("fk_digest_renders_body", type_="foreignkey")
        batch.drop_column("body_id")
    op.drop_table("render_bodies")
