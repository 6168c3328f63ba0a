"""SQL database source: a table or one read-only SELECT, streamed in chunks through SQLAlchemy.

Any database SQLAlchemy reaches works (PostgreSQL, MariaDB/MySQL, SQLite, …); the URL, password included,
comes from an Airflow Connection, never from the rules file. Nothing is ever committed: the read runs in a
transaction that is rolled back (and, on PostgreSQL, declared READ ONLY).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import URL, Connection, create_engine, exc, text

from usersync.core.connection import ConnectionFields, sqlalchemy_url
from usersync.core.progress import Progress
from usersync.sources.base import OneAccount, Source, missing
from usersync.sources.database.spec import DatabaseSourceSpec
from usersync.sources.errors import SourceAuthError, SourceError, SourceQueryError, SourceUnreachable
from usersync.sources.read_state import SourceInfo
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)
_AUTH_HINTS = ("password authentication failed", "access denied", "authentication failed", "no password supplied")
_UNREACHABLE_HINTS = ("connection refused", "could not connect", "can't connect", "timeout", "timed out",
                      "name or service not known", "no route to host", "unable to open database file")


class DatabaseSource(Source):

    spec: DatabaseSourceSpec
    empty_hint = "wrong table, WHERE clause or query? an empty table? a database user without SELECT on it?"
    def __init__(self, spec: DatabaseSourceSpec, url: URL, attributes: list[str]):
        self.spec, self.url, self.attributes = spec, url, attributes
        self.engine = create_engine(url, pool_pre_ping=False)
        self.where = url.render_as_string(hide_password=True)

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> DatabaseSource:
        assert isinstance(spec, DatabaseSourceSpec) and connection is not None
        try:
            url = sqlalchemy_url(connection)
        except ValueError as exc:
            raise SourceQueryError(str(exc)) from None
        return cls(spec, url, attributes)

    def _sql(self) -> str:
        if self.spec.query:
            return self.spec.query.strip().rstrip(";")
        quote = self.engine.dialect.identifier_preparer.quote
        return "SELECT * FROM " + ".".join(quote(part) for part in (self.spec.table or "").split("."))

    def _connect(self) -> Connection:
        try:
            conn = self.engine.connect()
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            return conn
        except exc.DBAPIError as e:
            raise _translate(e, self.where) from None

    def check(self) -> SourceInfo:
        with self._connect() as conn:
            try:
                result = conn.execute(text(f"SELECT * FROM ({self._sql()}) usersync_q WHERE 1 = 0"))
            except exc.DBAPIError as e:
                raise _translate(e, self.where) from None
            columns = list(result.keys())
            conn.rollback()
        lacking = missing(self.attributes, columns)
        if lacking:
            raise SourceQueryError(
                f"{self.spec.describe()} on {self.where} has no column(s) {', '.join(lacking)} "
                f"(it has: {', '.join(columns)})"
            )
        return SourceInfo(url=self.where, warnings=[], where={"table": self.spec.table or "(query)"})

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        progress = Progress(f"extract {self.spec.describe()}", log)
        what = self.spec.table or "query"
        with self._connect() as conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=self.spec.chunk_size).execute(
                    text(self._sql())
                )
                for n, row in enumerate(result.mappings(), start=1):
                    attrs = {k: _text(v) for k, v in row.items()}
                    key = attrs.get(self.spec.key_attribute)
                    yield SourceRecord(f"{what} row {n} ({self.spec.key_attribute}={key})", attrs)
                    progress.advance()
            except exc.DBAPIError as e:
                raise _translate(e, self.where) from None
            finally:
                conn.rollback()
        progress.done()

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """The row whose key (or anchor) column equals ``account``: the table or query filtered by the
        database (``WHERE key = :value``), never read whole. The query is the scope: a row it does not return
        is not in the source."""
        quote = self.engine.dialect.identifier_preparer.quote
        columns = [c for c in (self.spec.key_attribute, self.spec.external_id_attribute) if c]
        where = " OR ".join(f"usersync_q.{quote(c)} = :account" for c in dict.fromkeys(columns))
        sql = f"SELECT * FROM ({self._sql()}) usersync_q WHERE {where}"
        with self._connect() as conn:
            try:
                rows = [dict(r) for r in conn.execute(text(sql), {"account": account}).mappings()]
            except exc.DBAPIError as e:
                raise _translate(e, self.where) from None
            finally:
                conn.rollback()
        if len(rows) > 1:
            raise SourceQueryError(f"{account!r} matches {len(rows)} rows of {self.spec.describe()} "
                                   f"({' or '.join(columns)}); the key must name one")
        found = OneAccount(account, found_by=f"{self.spec.describe()} WHERE {' OR '.join(f'{c} = {account!r}' for c in dict.fromkeys(columns))}",
                           requests=1, entries=len(rows))
        if rows:
            attrs = {k: _text(v) for k, v in rows[0].items()}
            found.record = SourceRecord(f"{self.spec.table or 'query'} row ({self.spec.key_attribute}="
                                        f"{attrs.get(self.spec.key_attribute)})", attrs)
        return found

    def close(self) -> None:
        self.engine.dispose()


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _translate(error: exc.DBAPIError, where: str) -> SourceError:
    message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    low = message.lower()
    if any(h in low for h in _AUTH_HINTS):
        return SourceAuthError(f"{where} refused the credentials: {message}")
    if isinstance(error, exc.OperationalError) and any(h in low for h in _UNREACHABLE_HINTS):
        return SourceUnreachable(f"cannot connect to {where}: {message}")
    return SourceQueryError(f"query on {where} failed: {message}")
