"""PostgreSQL's bulk path: ``COPY … FROM STDIN`` inside the caller's transaction (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection


def can_copy(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Copy ``rows`` (values in ``columns``' order) into ``table``; returns the rows copied."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None, "a connection in a transaction has its DBAPI connection"
    cursor = dbapi.cursor()
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return cursor.rowcount
    finally:
        cursor.close()
