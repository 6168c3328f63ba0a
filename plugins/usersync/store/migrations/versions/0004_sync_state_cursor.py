"""sync_state.cursor: Microsoft Graph's delta link for entra_id sources (AD keeps using the USN columns).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_state", sa.Column(
        "cursor", sa.Text, nullable=True,
        comment="where the next delta read starts: Graph's @odata.deltaLink (entra_id); empty for AD"))


def downgrade() -> None:
    op.drop_column("sync_state", "cursor")
