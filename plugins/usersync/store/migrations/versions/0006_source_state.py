"""source_state: what the database keeps of each source between runs — its read position, which only its
reader interprets (JSON), and room for facts about the source beyond it — in place of sync_state, whose columns
were Active Directory's (invocationId, USN) with Graph's delta link beside them.

Stored positions are carried over whole: an AD position keeps its invocationId and USN, an Entra ID one its
delta link, so no source has to read in full because of the upgrade.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "source_state",
        sa.Column("source", sa.String(64), primary_key=True, comment="rules source name"),
        sa.Column("read_server", sa.String(512), nullable=True,
                  comment="where the last applied read read (a DC's dsServiceName, a tenant)"),
        sa.Column("read_position", sa.Text, nullable=True,
                  comment="how far it read, as JSON only its reader interprets (AD: invocation_id, usn; Graph: cursor)"),
        sa.Column("rules_hash", sa.String(64), nullable=True, comment="SHA-256 of the rules the last read used"),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=True, comment="when the last full read ran"),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False, comment="when this row last changed"),
        sa.Column("facts", sa.Text, nullable=True, comment="facts about the source beyond its read position (JSON)"),
    )
    conn = op.get_bind()
    old = sa.table("sync_state", *(sa.column(c) for c in (
        "source", "server", "invocation_id", "usn", "rules_hash", "cursor")),
        sa.column("full_at", sa.DateTime(timezone=True)), sa.column("saved_at", sa.DateTime(timezone=True)))
    rows = [dict(r) for r in conn.execute(sa.select(old)).mappings()]
    if rows:
        op.bulk_insert(state, [{
            "source": r["source"], "read_server": r["server"],
            "read_position": json.dumps({"invocation_id": r["invocation_id"], "usn": int(r["usn"]),
                                         **({"cursor": r["cursor"]} if r["cursor"] else {})}),
            "rules_hash": r["rules_hash"], "full_at": r["full_at"], "saved_at": r["saved_at"], "facts": None,
        } for r in rows])
    op.drop_table("sync_state")


def downgrade() -> None:
    old = op.create_table(
        "sync_state",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("server", sa.String(512), nullable=False),
        sa.Column("invocation_id", sa.String(64), nullable=False),
        sa.Column("usn", sa.BigInteger, nullable=False),
        sa.Column("rules_hash", sa.String(64), nullable=False),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cursor", sa.Text, nullable=True),
    )
    conn = op.get_bind()
    state = sa.table("source_state", *(sa.column(c) for c in ("source", "read_server", "read_position", "rules_hash")),
                     sa.column("full_at", sa.DateTime(timezone=True)), sa.column("saved_at", sa.DateTime(timezone=True)))
    rows = [dict(r) for r in conn.execute(sa.select(state).where(state.c.read_server.is_not(None))).mappings()]
    out = []
    for r in rows:
        position = json.loads(r["read_position"] or "{}")
        out.append({"source": r["source"], "server": r["read_server"],
                    "invocation_id": str(position.get("invocation_id") or "graph"), "usn": int(position.get("usn") or 0),
                    "rules_hash": r["rules_hash"], "full_at": r["full_at"], "saved_at": r["saved_at"],
                    "cursor": position.get("cursor")})
    if out:
        op.bulk_insert(old, out)
    op.drop_table("source_state")
