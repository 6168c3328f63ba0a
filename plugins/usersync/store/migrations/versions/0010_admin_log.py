"""admin_log: what administrators did to a source's configuration from the console.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(256), nullable=False, comment="the Airflow user"),
        sa.Column("source", sa.String(64), nullable=False, comment="rules source name"),
        sa.Column("action", sa.String(32), nullable=False,
                  comment="draft, live, created, connection, test, triggered, schedule"),
        sa.Column("ok", sa.Boolean, nullable=False, server_default=sa.true(), comment="false: a Test that failed"),
        sa.Column("summary", sa.Text, nullable=False, comment="what was done, in one line (never a secret)"),
        sa.Column("detail", sa.Text, nullable=True,
                  comment="JSON: the settings changed, the Test's lines, the run id"),
        sa.Column("before_text", sa.Text, nullable=True, comment="the rules file's text this change replaced"),
        sa.Column("after_text", sa.Text, nullable=True, comment="the rules file's text after the change"),
    )
    op.create_index("ix_admin_log_source", "admin_log", ["source", "at"])


def downgrade() -> None:
    op.drop_index("ix_admin_log_source", table_name="admin_log")
    op.drop_table("admin_log")
