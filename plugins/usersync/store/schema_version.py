"""Schema versions of the users database, kept by Alembic (migrations in ``usersync/migrations``).

A sync writes only to a database at exactly the schema this code knows. An empty database is created at the
newest version (installing is not migrating: there is nothing to lose). A database that is behind — including
one made before migrations existed — or ahead (written by a newer usersync) is refused with the command that
fixes it; upgrading is an admin's decision, taken once, never a side effect of a nightly run.
"""

from __future__ import annotations

import logging
import weakref
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select

from usersync.core.errors import UsersyncError

log = logging.getLogger(__name__)
#: Alembic's bookkeeping table, named for this project (Airflow's own metadata database has ``alembic_version``)
VERSION_TABLE = "usersync_schema_version"
MIGRATION_LOCK = 0x7573796E635F6462  # pg_advisory_xact_lock key of migrations ("usync_db")
MIGRATIONS = Path(__file__).with_name("migrations")
#: revision of each schema that existed before migrations did, by a column only it lacks
_UNVERSIONED = (("disabled_by_sync", "0001"),)


#: engines already found at the newest revision in this process
_AT_HEAD: weakref.WeakSet[Engine] = weakref.WeakSet()


class SchemaVersionError(UsersyncError, RuntimeError):
    """The users database is not at the schema this code writes; nothing was written."""


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head() -> str:
    """The newest revision this code knows."""
    newest = ScriptDirectory.from_config(_config()).get_current_head()
    assert newest is not None, "the migrations folder has no head revision"
    return newest


def current(engine: Engine) -> str | None:
    """The database's revision; None when it has none (empty, or made before migrations existed)."""
    with engine.connect() as conn:
        return _revision(conn)


def _unversioned_revision(bind) -> str | None:
    """The revision of a database made before migrations existed (a users table without a version); else None."""
    inspector = inspect(bind)
    if not inspector.has_table("users"):
        return None
    columns = {c["name"] for c in inspector.get_columns("users")}
    for column, revision in _UNVERSIONED:
        if column not in columns:
            return revision
    return "0002"


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``revision`` (default: the newest), keeping every row; returns (before, after).

    Holds the migration lock (``_lock``).
    """
    _AT_HEAD.discard(engine)
    with engine.begin() as conn:
        _lock(conn)
        before = _revision(conn)
        config = _config(conn)
        if before is None:
            legacy = _unversioned_revision(conn)
            if legacy is not None:
                log.info("users database made before schema versions existed: recognised as revision %s", legacy)
                command.stamp(config, legacy)
        command.upgrade(config, revision)
    after = current(engine)
    assert after is not None, "the upgrade left no revision"
    return before, after


def _lock(conn) -> None:
    """Migrations one at a time (PostgreSQL; SQLite has one writer anyway): two workers finding the same empty
    database — the first runs of two sources — create it once, and the second sees it done."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))


def _revision(conn) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _create_if_empty(engine: Engine, where: str) -> str | None:
    """Under the migration lock: the revision now, after creating the schema if the database was empty."""
    with engine.begin() as conn:
        _lock(conn)
        at = _revision(conn)
        if at is None and _unversioned_revision(conn) is None and not inspect(conn).has_table("sync_state"):
            log.info("empty users database %s: creating the schema (revision %s)", where, head())
            command.upgrade(_config(conn), "head")
            at = head()
    return at


def ensure_schema(engine: Engine, upgrade_command: str | None = None) -> None:
    """Create an empty database at the newest schema; refuse one that is behind or ahead.

    ``upgrade_command`` is what the admin runs to upgrade this database (the Airflow adapter names the
    connection); by default the domain CLI with the database URL.
    """
    if engine in _AT_HEAD:  # one check per engine and process: every step calls this before it reads or writes
        return
    at = current(engine)
    if at == head():
        _AT_HEAD.add(engine)
        return
    fix = upgrade_command or f"usersync db upgrade --url '{engine.url.render_as_string(hide_password=True)}'"
    where = engine.url.render_as_string(hide_password=True)
    if at is None:
        at = _create_if_empty(engine, where)
        if at == head():
            _AT_HEAD.add(engine)
            return
        legacy = _unversioned_revision(engine)
        raise SchemaVersionError(
            f"the users database {where} was made by an older usersync (before schema versions; recognised as "
            f"revision {legacy}, this code needs {head()}); nothing was written. Back it up, then run: {fix}")
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if at not in known:
        raise SchemaVersionError(
            f"the users database {where} is at schema revision {at}, newer than this usersync knows (newest "
            f"{head()}); nothing was written. Deploy the usersync version that made it on every worker.")
    raise SchemaVersionError(
        f"the users database {where} is at schema revision {at}, behind this usersync ({head()}); nothing was "
        f"written. Back it up, then run: {fix}")
