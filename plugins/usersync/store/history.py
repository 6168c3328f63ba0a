"""Reading the per-user log (``usersync.store.user_log`` writes it): one user's timeline across sources, the
records of one run (what an undo reverses), what changed since, retention, and the users the log rebuilds.

A search names a user the way an admin knows them — username, AD username, ``DOMAIN\\user``, anchor, e-mail or
a number. Usernames, AD usernames and anchors are found in the log itself (so a deleted user is found too);
e-mail addresses and numbers through the users table, which finds the users holding them now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Connection, DateTime, Engine, and_, delete, func, or_, select

from usersync.core.users_table import user_events, users
from usersync.plan.changes import SkipCode
from usersync.rules.fields import NUMBER_FIELDS
from usersync.store.schema_version import ensure_schema
from usersync.store.user_log import INSERTED, ROW_COLUMNS, SKIPPED, WRITES

#: at most this many records in one timeline (the oldest are left out beyond it)
TIMELINE_LIMIT = 2000
PRUNE_BATCH = 10_000


@dataclass(frozen=True)
class Event:
    """One record of the log, its detail decoded: ``changes`` {column: [old, new]}, ``row`` (a deleted or
    inserted user's values), ``reason``, ``account``, ``note``."""

    id: int
    at: datetime
    action: str
    run_id: str
    source: str | None
    user_id: int | None
    username: str | None
    ad_username: str | None
    domain: str | None
    external_id: str | None
    code: str | None = None
    approved_by: str | None = None
    rules_hash: str | None = None
    last_at: datetime | None = None
    last_run_id: str | None = None
    seen: int = 1
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Any) -> Event:
        values = dict(row)
        detail = json.loads(values.pop("detail") or "{}")
        if "row" in detail:  # columns left out of a stored row were NULL
            detail["row"] = {c: normal(c, detail["row"].get(c)) for c in ROW_COLUMNS}
        if "changes" in detail:
            detail["changes"] = {c: [normal(c, old), normal(c, new)] for c, (old, new) in detail["changes"].items()}
        for key in ("fingerprint", "open"):
            values.pop(key, None)
        return cls(**{**values, "at": _utc(values["at"]), "last_at": _utc(values["last_at"])}, detail=detail)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("at", "last_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["detail"] = json.loads(json.dumps(out["detail"], default=str))
        return out

    @property
    def key(self) -> str | None:
        return f"{self.domain}\\{self.ad_username}" if self.ad_username else None


def normal(column: str, value: Any) -> Any:
    """A users column's value as read back from a record's JSON: booleans as bool, times as UTC datetimes."""
    if value is None or column not in users.c:
        return value
    kind = users.c[column].type
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, DateTime):
        return _utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _who(conn: Connection, query: str) -> tuple[set[int], list]:
    """The users ``query`` names: (user ids holding it in the users table now, conditions on the log's columns).
    The users table is asked only for an e-mail address or a number (which the log does not index)."""
    text = query.strip()
    folded = text.casefold()
    domain, sep, account = text.partition("\\")
    if sep:  # DOMAIN\user
        return set(), [and_(func.lower(user_events.c.ad_username) == account.casefold(),
                            func.lower(user_events.c.domain) == domain.casefold())]
    conditions = [func.lower(user_events.c.username) == folded, func.lower(user_events.c.ad_username) == folded,
                  user_events.c.external_id == text]
    holding = None
    if "@" in text:
        holding = func.lower(users.c.email) == folded
    elif _NUMBER.match(text):
        holding = or_(*[users.c[c] == text for c in NUMBER_FIELDS])
    ids = {r[0] for r in conn.execute(select(users.c.id).where(holding))} if holding is not None else set()
    return ids, conditions


#: what a number looks like (digits, with +, spaces, dashes, dots or parentheses)
_NUMBER = re.compile(r"^[+()0-9 .\-]{2,}$")


def timeline(engine: Engine, query: str, sources: Iterable[str] | None = None,
             limit: int = TIMELINE_LIMIT) -> list[Event]:
    """Every record about the user(s) ``query`` names, oldest first, across all sources (or only ``sources``):
    found by the names the log holds, then widened to every record of the same user ids and anchors. Each step
    is one index lookup; the newest ``limit`` records are returned."""
    if not query.strip():
        return []
    with engine.connect() as conn:
        ids, conditions = _who(conn, query)
        found: set[int] = set()
        anchors: set[str] = set()
        for condition in conditions:
            for id_, user_id, anchor in conn.execute(select(user_events.c.id, user_events.c.user_id,
                                                            user_events.c.external_id).where(condition)):
                found.add(id_)
                if user_id is not None:
                    ids.add(user_id)
                if anchor:
                    anchors.add(anchor)
        for column, values in ((user_events.c.user_id, ids), (user_events.c.external_id, anchors)):
            wanted = sorted(values)
            for i in range(0, len(wanted), 1000):
                found.update(r[0] for r in conn.execute(select(user_events.c.id).where(column.in_(wanted[i:i + 1000]))))
        newest = sorted(found)[-limit:]
        where = [user_events.c.source.in_(sorted(set(sources)))] if sources is not None else []
        events = []
        for i in range(0, len(newest), 1000):
            rows = conn.execute(select(user_events).where(user_events.c.id.in_(newest[i:i + 1000]), *where)
                                .order_by(user_events.c.id)).mappings()
            events += [Event.of(r) for r in rows]
        return events


def run_events(engine: Engine, source: str, run_id: str) -> list[Event]:
    """The records one run of ``source`` wrote (first made by it), in the order written."""
    with engine.connect() as conn:
        rows = conn.execute(select(user_events).where(user_events.c.source == source, user_events.c.run_id == run_id)
                            .order_by(user_events.c.id)).mappings()
        return [Event.of(r) for r in rows]


def changed_since(engine: Engine, user_ids: Iterable[int], after: int) -> dict[int, Event]:
    """Per user of ``user_ids`` written by any run after record ``after``: the first such record."""
    wanted = sorted(set(user_ids))
    found: dict[int, Event] = {}
    with engine.connect() as conn:
        for i in range(0, len(wanted), 5000):
            query = select(user_events).where(user_events.c.id > after, user_events.c.action.in_(WRITES),
                                              user_events.c.user_id.in_(wanted[i:i + 5000])).order_by(user_events.c.id)
            for row in conn.execute(query).mappings():
                found.setdefault(row["user_id"], Event.of(row))
    return found


def prune(engine: Engine, older_than: datetime, source: str | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete the records (of ``source``, or all) last seen before ``older_than``, ``batch`` at a time (one short
    transaction each, so a large backlog never holds a long lock); returns how many."""
    gone = 0
    stale = and_(user_events.c.at < older_than,
                 or_(user_events.c.last_at.is_(None), user_events.c.last_at < older_than),
                 *([user_events.c.source == source] if source is not None else []))
    while True:
        with engine.begin() as conn:
            ids = [r[0] for r in conn.execute(select(user_events.c.id).where(stale).limit(batch))]
            if not ids:
                return gone
            conn.execute(delete(user_events).where(user_events.c.id.in_(ids)))
        gone += len(ids)


def all_events(engine: Engine, chunk: int = 10_000) -> Iterator[Event]:
    """Every record, oldest first (for replaying the log)."""
    last = 0
    with engine.connect() as conn:
        while True:
            rows = list(conn.execute(select(user_events).where(user_events.c.id > last)
                                     .order_by(user_events.c.id).limit(chunk)).mappings())
            if not rows:
                return
            yield from (Event.of(r) for r in rows)
            last = rows[-1]["id"]


def replay(events: Iterable[Event]) -> dict[int, dict[str, Any]]:
    """The users a sync owns as the log tells it, by row id: inserted (or restored) rows, then each change's new
    values, deletes removing them; a detached user is no longer the sync's."""
    state: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.user_id is None:
            continue
        if event.action == INSERTED:
            state[event.user_id] = dict(event.detail["row"])
        elif event.action == "deleted":
            state.pop(event.user_id, None)
        elif event.action in WRITES and event.user_id in state:
            state[event.user_id].update({c: new for c, (_old, new) in event.detail.get("changes", {}).items()})
    return {id_: row for id_, row in state.items() if row.get("source")}


def repeated_skips(engine: Engine, source: str) -> dict[str, int]:
    """The accounts of ``source`` its runs still skip for the same bad data, with how many runs in a row did
    (the open repeating records of the per-user log: a change of the data or the reason starts a new one)."""
    ensure_schema(engine)
    query = select(user_events.c.detail, user_events.c.seen).where(
        user_events.c.source == source, user_events.c.open, user_events.c.action == SKIPPED,
        user_events.c.code == SkipCode.BAD_DATA)
    with engine.connect() as conn:
        return {json.loads(detail or "{}").get("account", ""): seen for detail, seen in conn.execute(query)}
