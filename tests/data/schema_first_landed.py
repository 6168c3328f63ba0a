# Frozen copy of plugins/usersync/schema.py as first landed (commit 67491e6), before migrations existed:
# tests build a pre-Alembic database with it and upgrade it.
"""The application's users table, owned by this project.

One table serves PostgreSQL (production) and SQLite (embedded default). Uniqueness that the database can
express is enforced by indexes; number uniqueness across the four number columns is enforced by the diff.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    func,
    text,
    true,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False, comment="login; unique, case-insensitive"),
    Column("first_name", String(128)),
    Column("last_name", String(128)),
    Column("email", String(320)),
    Column("department", String(256)),
    Column("extension", String(64), comment="first extension number"),
    Column("alias_extension", String(64)),
    Column("voicemail_number", String(64)),
    Column("fax_number", String(64)),
    Column("mobile", String(64)),
    Column("language", String(16)),
    Column("personal_address", String(512)),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("voicemail_enabled", Boolean, nullable=False, server_default=false()),
    Column("call_recording_license", Boolean, nullable=False, server_default=false()),
    Column("hidden_from_directory", Boolean, nullable=False, server_default=false()),
    Column("ad_username", String(256), comment="sync key, with domain; blank for local users"),
    Column("domain", String(256), comment="sync key, with ad_username; blank for local users"),
    Column("external_id", String(128), comment="immutable source anchor (objectGUID, CUCM uuid)"),
    Column("source", String(64), comment="name of the source that owns this user; NULL = not owned"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

_KEYED = text("ad_username IS NOT NULL AND ad_username <> ''")

Index("ux_users_username", func.lower(users.c.username), unique=True)
Index(
    "ux_users_sync_key",
    func.lower(users.c.ad_username),
    func.lower(users.c.domain),
    unique=True,
    postgresql_where=_KEYED,
    sqlite_where=_KEYED,
)
Index("ix_users_source", users.c.source)

#: Columns holding phone numbers: every non-empty value is unique across all four of them.
NUMBER_COLUMNS = ("extension", "alias_extension", "voicemail_number", "fax_number")
#: Columns a sync run may write (everything but identity and bookkeeping).
BOOKKEEPING_COLUMNS = ("id", "created_at", "updated_at")


def create_schema(engine) -> None:
    """Create the users table if it does not exist (idempotent)."""
    metadata.create_all(engine, checkfirst=True)
