"""Alembic environment: runs on the connection ``usersync.store.schema_version`` hands over (no alembic.ini)."""

from alembic import context

from usersync.core.users_table import metadata
from usersync.store.schema_version import VERSION_TABLE

connection = context.config.attributes["connection"]
# no render_as_batch: SQLite's table copy cannot carry the expression indexes (lower(username)) along
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
