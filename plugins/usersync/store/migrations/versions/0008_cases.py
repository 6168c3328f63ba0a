"""cases: held numbers and match proposals an administrator decides, kept between runs.

One live case per (source, key): the partial unique index makes a second one impossible, while closed cases
stay as history.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sa.text
    cases = op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False, comment="rules source name"),
        sa.Column("kind", sa.String(16), nullable=False, comment="number (a held number) or match (a proposed match)"),
        sa.Column("key", sa.String(600), nullable=False, comment="what makes the case the same one from run to run"),
        sa.Column("status", sa.String(16), nullable=False,
                  comment="open, decided (waits for the next run), kept (the holder keeps the number), rejected, "
                          "closed"),
        sa.Column("decision", sa.String(16), nullable=True, comment="confirm, reject, give, keep"),
        sa.Column("user_id", sa.Integer, nullable=True, comment="confirm: the user the account is linked to"),
        sa.Column("decided_by", sa.String(256), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=text("0"),
                  comment="raised by each decision: a run applies exactly the decision it read"),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_run_id", sa.String(250), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_id", sa.String(250), nullable=False),
        sa.Column("seen", sa.Integer, nullable=False, server_default=text("1"), comment="runs that found the case"),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True,
                  comment="when holder, value or candidates changed"),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True,
                  comment="when a report last announced it"),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_run_id", sa.String(250), nullable=True),
        sa.Column("outcome", sa.String(256), nullable=True, comment="how the case ended"),
        sa.Column("account", sa.String(512), nullable=True, comment="the claimant account, as the source names it"),
        sa.Column("username", sa.String(256), nullable=True, comment="the claimant's username"),
        sa.Column("ad_username", sa.String(256), nullable=True),
        sa.Column("domain", sa.String(256), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("field", sa.String(64), nullable=True, comment="number: the field held aside"),
        sa.Column("value", sa.String(256), nullable=True, comment="number: the value held aside"),
        sa.Column("holder_id", sa.Integer, nullable=True, comment="number: users.id of the holder"),
        sa.Column("holder", sa.String(256), nullable=True, comment="number: the holder's username"),
        sa.Column("detail", sa.Text, nullable=True,
                  comment="JSON: the account's values, the candidates, the holder's owner"),
    )
    op.create_index("ix_cases_source_status", "cases", ["source", "status"])
    op.create_index("ux_cases_live_key", "cases", ["source", "key"], unique=True,
                    postgresql_where=cases.c.closed_at.is_(None), sqlite_where=cases.c.closed_at.is_(None))


def downgrade() -> None:
    op.drop_table("cases")
