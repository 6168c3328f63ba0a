"""A connection's fields as plain data: what sources and the users database are reached through.

Airflow keeps connections (host, login, password, extras) in its own store; the adapter copies the one a run
needs into a ``ConnectionFields`` so the domain builds its clients without importing Airflow. The password never
appears in ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import URL


@dataclass(frozen=True)
class ConnectionFields:
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: where a client keeps a secret the server renewed (a rotated OAuth refresh token): ``keep(name, value)``;
    #: the adapter stores it so the next run reads it into ``extra`` before the connection's own
    keep: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)

    def flag(self, name: str, default: bool = False) -> bool:
        """A yes/no extra, written as a JSON boolean or as text (``"true"``, ``"1"``, ``"yes"``, ``"on"``)."""
        value = self.extra.get(name, default)
        return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}

#: connection types → SQLAlchemy drivers (an extra ``sqlalchemy_driver`` overrides)
DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql", "sqlite": "sqlite"}

def sqlalchemy_url(conn: ConnectionFields) -> URL:
    """A SQLAlchemy URL from a connection; the password stays inside the URL object, never logged."""
    driver = conn.extra.get("sqlalchemy_driver") or DRIVERS.get((conn.conn_type or "").lower())
    if driver is None:
        raise ValueError(f"connection {conn.conn_id!r}: type {conn.conn_type!r} is not supported "
                         f"({', '.join(sorted(DRIVERS))}, or set extra 'sqlalchemy_driver')")
    if driver.startswith("sqlite"):
        return URL.create(driver, database=conn.host or conn.schema)
    return URL.create(driver, username=conn.login or None, password=conn.password or None,
                      host=conn.host or None, port=conn.port or None, database=conn.schema or None)
