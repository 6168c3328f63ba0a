"""The users table as first landed (before migrations existed).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_KEYED = sa.text("ad_username IS NOT NULL AND ad_username <> ''")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(256), nullable=False, comment="login; unique, case-insensitive"),
        sa.Column("first_name", sa.String(128)),
        sa.Column("last_name", sa.String(128)),
        sa.Column("email", sa.String(320)),
        sa.Column("department", sa.String(256)),
        sa.Column("extension", sa.String(64), comment="first extension number"),
        sa.Column("alias_extension", sa.String(64)),
        sa.Column("voicemail_number", sa.String(64)),
        sa.Column("fax_number", sa.String(64)),
        sa.Column("mobile", sa.String(64)),
        sa.Column("language", sa.String(16)),
        sa.Column("personal_address", sa.String(512)),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("voicemail_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("call_recording_license", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("hidden_from_directory", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("ad_username", sa.String(256), comment="sync key, with domain; blank for local users"),
        sa.Column("domain", sa.String(256), comment="sync key, with ad_username; blank for local users"),
        sa.Column("external_id", sa.String(128), comment="immutable source anchor (objectGUID, CUCM uuid)"),
        sa.Column("source", sa.String(64), comment="name of the source that owns this user; NULL = not owned"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ux_users_username", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("ux_users_sync_key", "users", [sa.text("lower(ad_username)"), sa.text("lower(domain)")],
                    unique=True, postgresql_where=_KEYED, sqlite_where=_KEYED)
    op.create_index("ix_users_source", "users", ["source"])


def downgrade() -> None:
    op.drop_table("users")
