"""sync_state: one row per source, the delta-sync watermark (Active Directory uSNChanged).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(64), primary_key=True, comment="rules source name"),
        sa.Column("server", sa.String(512), nullable=False, comment="the directory server read (dsServiceName)"),
        sa.Column("invocation_id", sa.String(64), nullable=False, comment="the DC's database identity"),
        sa.Column("usn", sa.BigInteger, nullable=False, comment="highestCommittedUSN read before the last search"),
        sa.Column("rules_hash", sa.String(64), nullable=False, comment="SHA-256 of the rules the last run used"),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False, comment="when the last full read ran"),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False, comment="when this watermark was stored"),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
