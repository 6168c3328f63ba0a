"""Alembic migrations of the users database (see ``usersync.store.schema_version``)."""
