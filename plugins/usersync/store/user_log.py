"""The per-user log, written by ``apply`` inside its transaction: a rolled-back run leaves no record, a committed
one always has its records.

One record per decision about a user: what was written (inserted, updated, returned, deleted, disabled,
detached — with the values before and after, and a deleted user's whole row so an undo can restore it) and what
was decided without a write (held, skipped — with its code and reason). A decision that repeats run after run is
one record kept *open*: each run that makes it again adds one to ``seen`` and moves ``last_at``; a run that read
the whole source and no longer makes it closes it, so the same skip coming back later is a new record. A run
that writes nothing and repeats what the last one decided adds no record.

Inserted users are logged by one ``INSERT … SELECT`` from the rows just written (the database builds each
record's JSON; nothing travels back to Python); the other records go with ``COPY`` on PostgreSQL,
``executemany`` elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    String,
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)

from usersync.core.users_table import user_events, users
from usersync.store.bulk import can_copy, copy_rows

INSERTED, UPDATED, RETURNED = "inserted", "updated", "returned"
DELETED, DISABLED, DETACHED = "deleted", "disabled", "detached"
HELD, SKIPPED, WRITTEN_BACK = "held", "skipped", "written_back"
#: actions that wrote the users table (what an undo reverses, and what "changed since" means)
WRITES = (INSERTED, UPDATED, RETURNED, DELETED, DISABLED, DETACHED)
#: the users columns a record keeps of a row: everything an undo needs to put the row back
ROW_COLUMNS = tuple(c.name for c in users.columns if c.name not in ("id", "updated_at"))
IDENTITY = ("username", "ad_username", "domain", "external_id")
_COPY_COLUMNS = ("at", "last_at", "seen", "run_id", "last_run_id", "source", "rules_hash", "action", "code",
                 "user_id", "username", "ad_username", "domain", "external_id", "approved_by", "detail",
                 "fingerprint", "open")


@dataclass(frozen=True)
class RunStamp:
    """What every record of one apply names besides the user: the run, the rules it followed, who let it through."""

    run_id: str
    rules_hash: str | None = None
    approved_by: str | None = None  # the approval's answer and who gave it, or the override and who set it
    #: the run read the whole source: repeating decisions it did not make again are closed
    full_read: bool = False
    note: str | None = None  # said on each record (an undo: which run it undoes)


def plain(value: Any) -> Any:
    """A column value as JSON holds it (times as ISO 8601)."""
    return value.isoformat() if isinstance(value, datetime | date) else value


def rules_file_hash(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


class UserLog:
    """The records of one apply, collected while it writes and written before it commits."""

    def __init__(self, conn: Connection, source: str, stamp: RunStamp, now: datetime) -> None:
        self.conn, self.source, self.stamp, self.now = conn, source, stamp, now
        self.records: list[dict[str, Any]] = []

    def add(self, action: str, who: Mapping[str, Any], user_id: int | None = None, code: str | None = None,
            **detail: Any) -> None:
        """One record about the user ``who`` (its identity columns are read from it)."""
        if self.stamp.note:
            detail["note"] = self.stamp.note
        self.records.append({
            "at": self.now, "last_at": None, "seen": 1, "run_id": self.stamp.run_id, "last_run_id": None,
            "source": self.source, "rules_hash": self.stamp.rules_hash, "action": action, "code": code,
            "user_id": user_id, **{c: who.get(c) for c in IDENTITY}, "approved_by": self.stamp.approved_by,
            "detail": json.dumps({k: _plain_deep(v) for k, v in detail.items() if v is not None}) if detail else None,
            "fingerprint": None, "open": False})

    def changed(self, action: str, row: Mapping[str, Any], changes: Mapping[str, tuple[Any, Any]],
                **detail: Any) -> None:
        self.add(action, row, row["id"], changes={c: [old, new] for c, (old, new) in changes.items()}, **detail)

    def removed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Deleted users, each with its whole row (what an undo restores)."""
        self._whole_rows(DELETED, rows)

    def restored(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Users an undo put back: inserted again, each with its whole row."""
        self._whole_rows(INSERTED, rows)

    def _whole_rows(self, action: str, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(action, row, row["id"], row={c: row.get(c) for c in ROW_COLUMNS})

    def inserted(self, since: datetime) -> int:
        """Records of the users this apply inserted (``created_at`` is the apply's time), built by the database
        from the rows themselves."""
        postgresql = self.conn.dialect.name == "postgresql"
        obj = func.json_build_object if postgresql else func.json_object
        row = obj(*[part for c in ROW_COLUMNS for part in (literal(c, String), users.c[c])])
        if postgresql:  # a column left out is NULL (``history.Event`` reads it so): about a quarter fewer bytes
            row = func.json_strip_nulls(row)
        detail = obj(literal("row", String), row,
                     *((literal("note", String), literal(self.stamp.note, String)) if self.stamp.note else ()))
        constants: dict[str, ColumnElement[Any]] = {
            "at": literal(self.now, DateTime(timezone=True)), "seen": literal(1),
            "run_id": literal(self.stamp.run_id, String), "source": literal(self.source, String),
            "rules_hash": literal(self.stamp.rules_hash, String), "action": literal(INSERTED, String),
            "approved_by": literal(self.stamp.approved_by, String), "open": literal(False)}
        query = select(*[*constants.values(), users.c.id, *[users.c[c] for c in IDENTITY], cast(detail, Text)]) \
            .where(users.c.source == self.source, users.c.created_at == since)
        columns = [*constants, "user_id", *IDENTITY, "detail"]
        return self.conn.execute(insert(user_events).from_select(columns, query)).rowcount

    def repeating(self, action: str, items: list[tuple[Mapping[str, Any], int | None, str | None, dict]]) -> None:
        """Decisions that repeat while nothing changes (holds, skips): ``items`` of (identity row, user id, code,
        detail). One open record each; a decision made again moves that record instead of adding one."""
        for row, user_id, code, detail in items:
            key = json.dumps([action, code, user_id, [row.get(c) for c in IDENTITY], detail], sort_keys=True,
                             default=str)
            self.add(action, row, user_id, code, **detail)
            self.records[-1].update(fingerprint=hashlib.sha256(key.encode()).hexdigest()[:40], open=True,
                                    last_at=self.now)

    def write(self, last: bool = False) -> int:
        """Write the records collected so far, in the order of the writes they record (a row id the database
        gives again after a delete must be logged deleted before inserted). The ``last`` write also settles the
        repeating decisions: those found open move on, the rest are added, and a whole-source run closes the open
        ones it did not make again. Returns the records added."""
        wanted = {r["fingerprint"]: r for r in self.records if r["fingerprint"]}
        opened = {} if not last else {fp: id_ for id_, fp in self.conn.execute(
            select(user_events.c.id, user_events.c.fingerprint).where(user_events.c.source == self.source,
                                                                      user_events.c.open))}
        again = [{"_id": opened[fp]} for fp in wanted if fp in opened]
        if again:
            self.conn.execute(update(user_events).where(user_events.c.id == bindparam("_id")).values(
                seen=user_events.c.seen + 1, last_at=self.now, last_run_id=self.stamp.run_id), again)
        if self.stamp.full_read:
            ended = [{"_id": id_} for fp, id_ in opened.items() if fp not in wanted]
            if ended:
                self.conn.execute(update(user_events).where(user_events.c.id == bindparam("_id"))
                                  .values(open=False), ended)
        new = [r for r in self.records if not r["fingerprint"] or r["fingerprint"] not in opened]
        new = list({id(r) if not r["fingerprint"] else r["fingerprint"]: r for r in new}.values())
        self.records = []
        if not new:
            return 0
        if can_copy(self.conn):
            copy_rows(self.conn, user_events.name, _COPY_COLUMNS, (tuple(r[c] for c in _COPY_COLUMNS) for r in new))
        else:
            self.conn.execute(insert(user_events), new)
        return len(new)


def _plain_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_deep(v) for v in value]
    return plain(value)


def log_written_back(engine: Engine, source: str, stamp: RunStamp, writes: Iterable[Any]) -> int:
    """Records of values written back to the directory (``sources.planned_write.Write``): one per user, each
    attribute old → new. Their own transaction: the change they record is in the directory, not this database."""
    by_user: dict[int, list[Any]] = {}
    for write in writes:
        by_user.setdefault(write.user_id, []).append(write)
    if not by_user:
        return 0
    with engine.begin() as conn:
        user_log = UserLog(conn, source, stamp, datetime.now(UTC))
        for user_id, done in by_user.items():
            user_log.add(WRITTEN_BACK, {"username": done[0].username}, user_id, account=done[0].account,
                         changes={w.attribute: [w.old, w.new] for w in done})
        return user_log.write()
