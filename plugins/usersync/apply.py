"""Write a change set to the users table: one transaction, set-based statements.

Deletes, then updates (one executemany per set of changed columns), then inserts (executemany, no
RETURNING — the notes measured RETURNING at 6× slower). Every statement's row count is checked; any
surprise rolls the whole change set back, so a run is applied entirely or not at all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import Engine, bindparam, delete, insert, select, update

from usersync.changes import ChangeSet
from usersync.progress import Progress
from usersync.schema import create_schema, users

log = logging.getLogger(__name__)
BATCH = 5000


class ApplyError(RuntimeError):
    """The table did not match what the diff saw (a concurrent edit?); nothing was written."""


def load_users(engine: Engine) -> list[dict[str, Any]]:
    """The whole users table in one query (the diff needs everyone, for ownership and unique numbers)."""
    create_schema(engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(users)).mappings()]


def _chunks(items: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _expect(result, expected: int, what: str, countable: bool) -> None:
    """Fail (and so roll back) when a statement touched another number of rows than planned."""
    if countable and result.rowcount != expected:
        raise ApplyError(f"{what}: expected {expected} rows, the table had {result.rowcount}; rolled back")


def apply_changes(engine: Engine, plan: ChangeSet, now: datetime | None = None) -> dict[str, int]:
    """Apply ``plan`` atomically; returns the rows written per operation."""
    create_schema(engine)
    now = now or datetime.now(timezone.utc)
    progress = Progress(f"apply {plan.source}", log, total=plan.writes)
    multi_ok = engine.dialect.supports_sane_multi_rowcount
    with engine.begin() as conn:
        for batch in _chunks([d.id for d in plan.deletes]):
            stmt = delete(users).where(users.c.id.in_(batch), users.c.source == plan.source)
            _expect(conn.execute(stmt), len(batch), "delete", True)
            progress.advance(len(batch))

        for batch in _chunks([d.id for d in plan.disables]):
            stmt = (
                update(users)
                .where(users.c.id.in_(batch), users.c.source == plan.source)
                .values(enabled=False, disabled_by_sync=True, updated_at=now)
            )
            _expect(conn.execute(stmt), len(batch), "disable", True)
            progress.advance(len(batch))

        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for u in plan.updates:
            by_columns[tuple(sorted(u.changes))].append({"_id": u.id, **{c: new for c, (_o, new) in u.changes.items()}})
        for columns, params in by_columns.items():
            stmt = (
                update(users)
                .where(users.c.id == bindparam("_id"))
                .values({**{c: bindparam(c) for c in columns}, "updated_at": now})
            )
            for batch in _chunks(params):
                _expect(conn.execute(stmt, batch), len(batch), f"update of {', '.join(columns)}", multi_ok)
                progress.advance(len(batch))

        rows = [{**i.row, "created_at": now, "updated_at": now} for i in plan.inserts]
        for batch in _chunks(rows):
            conn.execute(insert(users), batch)
            progress.advance(len(batch))
    if plan.writes:
        progress.done()
    return {"inserted": len(plan.inserts), "updated": len(plan.updates), "deleted": len(plan.deletes),
            "disabled": len(plan.disables)}
