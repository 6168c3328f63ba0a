"""user_events: the per-user log — every decision a run made about a user, written in the apply transaction.

Indexed for the history search (by user id, username, AD username, anchor, run) and for pruning (by time);
repeating decisions still made are found by (source, fingerprint) among the open ones.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    events = op.create_table(
        "user_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the run applied (first seen, for repeats)"),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True, comment="last seen (repeating decisions)"),
        sa.Column("seen", sa.Integer, nullable=False, server_default=sa.text("1"),
                  comment="runs that made this decision"),
        sa.Column("run_id", sa.String(250), nullable=False,
                  comment="the run that made the decision (first, for repeats)"),
        sa.Column("last_run_id", sa.String(250), nullable=True, comment="the last run that made it again"),
        sa.Column("source", sa.String(64), nullable=True, comment="rules source name"),
        sa.Column("rules_hash", sa.String(64), nullable=True, comment="SHA-256 of the rules file the run followed"),
        sa.Column("action", sa.String(24), nullable=False,
                  comment="inserted, updated, returned, deleted, disabled, detached, held, skipped, written_back"),
        sa.Column("code", sa.String(64), nullable=True, comment="why an account was skipped (SkipCode)"),
        sa.Column("user_id", sa.Integer, nullable=True, comment="users.id of the user (NULL: a skipped account)"),
        sa.Column("username", sa.String(256), nullable=True),
        sa.Column("ad_username", sa.String(256), nullable=True),
        sa.Column("domain", sa.String(256), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True, comment="the account's anchor"),
        sa.Column("approved_by", sa.String(256), nullable=True,
                  comment="who let the run through a guard, and the answer"),
        sa.Column("detail", sa.Text, nullable=True,
                  comment="JSON: changes {column: [old, new]}, row (the values to restore), reason, account, note"),
        sa.Column("fingerprint", sa.String(64), nullable=True, comment="what makes a repeating decision the same one"),
        sa.Column("open", sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="a repeating decision the source's last full run still made"),
    )
    op.create_index("ix_user_events_user", "user_events", ["user_id"])
    op.create_index("ix_user_events_username", "user_events", [sa.func.lower(events.c.username)])
    op.create_index("ix_user_events_ad_username", "user_events", [sa.func.lower(events.c.ad_username)])
    op.create_index("ix_user_events_anchor", "user_events", ["external_id"])
    op.create_index("ix_user_events_run", "user_events", ["run_id"])
    op.create_index("ix_user_events_at", "user_events", ["at"])
    op.create_index("ix_user_events_open", "user_events", ["source", "fingerprint"],
                    postgresql_where=events.c.open, sqlite_where=events.c.open)


def downgrade() -> None:
    op.drop_table("user_events")
