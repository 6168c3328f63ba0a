"""users.disabled_by_sync: the deletion policy 'disable' (landed with the safe-runs work).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN on both backends: SQLite's "batch" table copy would lose the expression indexes
    op.add_column("users", sa.Column(
        "disabled_by_sync", sa.Boolean, nullable=False, server_default=sa.false(),
        comment="disabled because the account left its source (deletion policy 'disable'); re-enabled if it returns"))


def downgrade() -> None:
    op.drop_column("users", "disabled_by_sync")  # SQLite >= 3.35 drops a column in place
