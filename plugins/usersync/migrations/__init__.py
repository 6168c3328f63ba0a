"""Alembic migrations of the users database (see ``usersync.schema_version``)."""
