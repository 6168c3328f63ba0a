"""users.left_at and users.sync_protected: the grace period before deletion, and protected users.

Users the deletion policy 'disable' disabled before this revision get ``left_at`` = the upgrade's time, so a
grace period configured afterwards starts at the upgrade: nobody is deleted earlier than it says.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs on both backends: SQLite's "batch" table copy would lose the expression indexes
    op.add_column("users", sa.Column(
        "left_at", sa.DateTime(timezone=True), nullable=True,
        comment="when the account was first found gone from its source (the run's due time, UTC); NULL while present"))
    op.add_column("users", sa.Column(
        "sync_protected", sa.Boolean, nullable=False, server_default=sa.false(),
        comment="set by the application or an admin: no sync ever deletes or disables this user"))
    users = sa.table("users", sa.column("left_at", sa.DateTime(timezone=True)), sa.column("disabled_by_sync", sa.Boolean))
    op.execute(users.update().where(users.c.disabled_by_sync == sa.true()).values(left_at=sa.func.now()))


def downgrade() -> None:
    op.drop_column("users", "sync_protected")  # SQLite >= 3.35 drops a column in place
    op.drop_column("users", "left_at")
