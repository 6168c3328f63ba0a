"""The users database hook: an Airflow Connection → a SQLAlchemy engine for the users table.

``postgres`` connections become ``postgresql+psycopg://``; ``sqlite`` connections use ``host`` as the file
path. The default connection id ``usersync_target`` may be left undefined: then the embedded SQLite database
``$USERSYNC_HOME/users.db`` is used (``USERSYNC_HOME`` defaults to ``$AIRFLOW_HOME/usersync``). Any other
connection id must exist, so a typo never writes users to the wrong place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from sqlalchemy import URL, Engine, create_engine

from usersync.core.connection import sqlalchemy_url
from usersync.core.paths import usersync_home
from usersync.store.schema_version import ensure_schema, upgrade
from usersync_airflow.hooks.connections import fields_of


def embedded_database_path() -> Path:
    return usersync_home() / "users.db"


class UsersDbHook(BaseHook):
    conn_name_attr = "users_conn_id"
    default_conn_name = "usersync_target"
    conn_type = "usersync_users_db"
    hook_name = "usersync users database"

    def __init__(self, users_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.users_conn_id = users_conn_id
        self._engine: Engine | None = None

    def sqlalchemy_url(self) -> URL:
        try:
            conn = self.get_connection(self.users_conn_id)
        except AirflowNotFoundException:
            if self.users_conn_id != self.default_conn_name:
                raise
            path = embedded_database_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.log.info("connection %r is not defined: using the embedded SQLite database %s", self.users_conn_id, path)
            return URL.create("sqlite", database=str(path))
        return sqlalchemy_url(fields_of(conn))

    def get_conn(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.sqlalchemy_url())
            ensure_schema(self._engine, upgrade_command=self.upgrade_command())
        return self._engine

    def upgrade_command(self) -> str:
        """The one command an admin runs to upgrade this connection's database."""
        return f"usersync-db upgrade {self.users_conn_id}"

    def upgrade(self) -> tuple[str | None, str]:
        """Migrate this connection's database to the newest schema (keeps every row)."""
        engine = create_engine(self.sqlalchemy_url())
        try:
            return upgrade(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def test_connection(self) -> tuple[bool, str]:
        try:
            engine = self.get_conn()
            with engine.connect():
                pass
            return True, f"users table reachable at {engine.url.render_as_string(hide_password=True)}"
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        finally:
            self.close()
