"""source_health: each source's last applied full read, last success and run of failures (quarantine).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_health",
        sa.Column("source", sa.String(64), primary_key=True, comment="rules source name"),
        sa.Column("last_read", sa.Integer, nullable=True, comment="accounts the last applied full read returned"),
        sa.Column("last_read_where", sa.Text, nullable=True, comment="JSON: those accounts per place (OU, domain)"),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_read_run_id", sa.String(250), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_run_id", sa.String(250), nullable=True),
        sa.Column(
            "state", sa.String(16), nullable=False, server_default=sa.text("'ok'"), comment="ok, failing or quarantined"
        ),
        sa.Column(
            "failure_kind", sa.String(32), nullable=True, comment="credentials, unreachable, timeout, source, other"
        ),
        sa.Column("reason", sa.Text, nullable=True, comment="the last failure, in one line (never a secret)"),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0"), comment="failed runs in a row"),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_run_id", sa.String(250), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "next_try_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="quarantined: scheduled runs before this skip the source",
        ),
        sa.Column(
            "alarmed_reason", sa.Text, nullable=True, comment="the reason the last alarm named (one alarm per reason)"
        ),
        sa.Column("alarmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(256), nullable=True, comment="who last released the source from quarantine"),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_health")
