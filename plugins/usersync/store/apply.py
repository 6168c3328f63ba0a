"""Write a change set to the users table: one transaction, set-based statements.

Deletes, then updates (one executemany per set of changed columns), then inserts — PostgreSQL ``COPY`` in
the same transaction (4× faster than executemany, per the notes), executemany elsewhere; never RETURNING
(6× slower). An error rolls the whole change set back, so a run is applied entirely or not at all.

Optimistic: an update writes a row only where each changed column still holds the value the diff saw, a delete
or disable only where the row is still the user the diff saw (username, AD username, Domain, source). A row an
admin (or anyone) changed between diff and apply is left as it is and reported as a conflict; the rest applies,
and the next run reconciles. Applies are serialised on the table and claims re-checked first (``recheck``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Delete, Engine, Update, bindparam, delete, insert, select, update

from usersync.core.errors import UsersyncError
from usersync.core.progress import Progress
from usersync.core.users_table import users
from usersync.plan.change_guard import LastRead
from usersync.plan.change_tables import ChangeTables
from usersync.plan.read_plan import Watermark
from usersync.store.bulk import copy_rows
from usersync.store.cases import hold_back_stale, record, take_numbers
from usersync.store.recheck import Conflict, lock_users_table, recheck
from usersync.store.schema_version import ensure_schema
from usersync.store.source_health import record_success
from usersync.store.source_state import save_watermark
from usersync.store.user_log import (
    DETACHED,
    DISABLED,
    HELD,
    IDENTITY,
    RETURNED,
    SKIPPED,
    UPDATED,
    RunStamp,
    UserLog,
)

log = logging.getLogger(__name__)
BATCH = 5000


class ApplyError(UsersyncError, RuntimeError):
    """The table did not match what the diff saw (a concurrent edit?); nothing was written."""


def load_users(engine: Engine) -> list[dict[str, Any]]:
    """The whole users table in one query (the diff needs everyone, for ownership and unique numbers)."""
    ensure_schema(engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(users)).mappings()]


def _chunks(items: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _expect(rowcount: int, expected: int, what: str, countable: bool = True) -> None:
    """Fail (and so roll back) when a statement touched another number of rows than planned."""
    if countable and rowcount != expected:
        raise ApplyError(f"{what}: expected {expected} rows, the table had {rowcount}; rolled back")


def apply_tables(engine: Engine, plan: ChangeTables, now: datetime | None = None,
                 watermark: Watermark | None = None, stamp: RunStamp | None = None,
                 read: LastRead | None = None) -> dict[str, int]:
    """Apply a change set of any size atomically: deletes, disables, updates, then inserts (COPY on PostgreSQL).

    ``watermark`` (delta sources) is stored in the same transaction: it moves exactly when the changes land; so
    is the per-user log of what was written and decided (``usersync.store.user_log``), stamped with ``stamp``,
    and the source's health: this success, and ``read`` (a full read's count and places) as its last good read.
    """
    ensure_schema(engine)
    now = now or datetime.now(UTC)
    from_run = stamp is not None  # a sync run (not a detach from the command line): its success is the source's
    stamp = stamp or RunStamp(run_id=f"apply__{now:%Y%m%dT%H%M%S%fZ}")
    left_at = datetime.fromisoformat(plan.as_of) if plan.as_of else now  # the day a leaver left: the run's time
    progress = Progress(f"apply {plan.source}", log, total=plan.writes)
    multi_ok = engine.dialect.supports_sane_multi_rowcount
    copy = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    conflicts: list[Conflict] = []
    with engine.begin() as conn:
        lock_users_table(conn)
        user_log = UserLog(conn, plan.source, stamp, now)
        conflicts += hold_back_stale(conn, plan)  # a decision changed since the diff: applied next run, never half
        missed = take_numbers(conn, plan.takes, user_log, now)  # before the re-check: the claimants' numbers are free
        conflicts += recheck(conn, plan, plan.seen)
        for what, table in (("delete", plan.deletes), ("disable", plan.disables), ("detach", plan.detaches)):
            for batch in _chunks(table.to_pylist()):
                found, lost = _still_the_same(conn, plan.source, batch, what)
                conflicts += lost
                ids = [row["id"] for row in found]
                stmt: Delete | Update
                if what == "delete":
                    stmt = delete(users).where(users.c.id.in_(ids))
                elif what == "disable":
                    stmt = update(users).where(users.c.id.in_(ids)).values(enabled=False, disabled_by_sync=True,
                                                                           left_at=left_at, updated_at=now)
                else:
                    stmt = update(users).where(users.c.id.in_(ids)).values({**LOCAL, "updated_at": now})
                _expect(conn.execute(stmt).rowcount, len(ids), what)
                _log_removals(user_log, what, found, batch, left_at)
                progress.advance(len(batch))

        for columns, params in plan.update_groups().items():
            stmt = (
                update(users)
                .where(users.c.id == bindparam("_id"),
                       *[users.c[c].is_not_distinct_from(bindparam(f"_old_{c}")) for c in columns if c not in UNCHECKED])
                .values({**{c: bindparam(c) for c in columns}, "updated_at": now})
            )
            for batch in _chunks(params):
                done = conn.execute(stmt, batch).rowcount
                lost = _unapplied(conn, f"update of {', '.join(columns)}", batch) \
                    if multi_ok and done != len(batch) else []
                conflicts += lost
                _log_updates(conn, user_log, plan, [p for p in batch if p["_id"] not in {c.id for c in lost}])
                progress.advance(len(batch))

        user_log.write()  # the removals' and updates' records, before the inserts'
        names = [*plan.inserts.column_names, "created_at", "updated_at"]
        for batch in plan.inserts.to_batches(max_chunksize=BATCH):
            values = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            rows = list(zip(*values, [now] * batch.num_rows, [now] * batch.num_rows))
            if copy:
                _expect(copy_rows(conn, users.name, names, rows), len(rows), "insert (COPY)")
            else:
                conn.execute(insert(users), [dict(zip(names, row)) for row in rows])
            progress.advance(batch.num_rows)
        if plan.inserts.num_rows:
            user_log.inserted(now)
        for restored in _chunks(plan.restores.to_pylist()):  # an undo puts deleted users back, row id and all
            conn.execute(insert(users), [{**row, "updated_at": now} for row in restored])
            user_log.restored(restored)
            progress.advance(len(restored))
        _log_decisions(user_log, plan)
        user_log.write(last=True)
        decided = plan.decided.filter(pc.invert(pc.is_in(plan.decided["case_id"], value_set=pa.array(missed, pa.int64()))))
        plan.recorded = record(conn, plan.source, plan.cases, decided, stamp, now,
                               not_applied={c.id for c in conflicts if c.id is not None}).to_json()
        if watermark is not None:
            save_watermark(conn, watermark, now)
        if from_run:
            record_success(conn, plan.source, stamp.run_id, now, read)
    if plan.writes:
        progress.done()
    plan.conflicts = conflicts
    for conflict in conflicts:
        log.warning("not applied: %s: %s", conflict.username, conflict.reason)
    written = {"inserted": plan.inserts.num_rows, "updated": plan.updates.num_rows - _count(conflicts, "update"),
               "deleted": plan.deletes.num_rows - _count(conflicts, "delete"),
               "disabled": plan.disables.num_rows - _count(conflicts, "disable")}
    if plan.detaches.num_rows:
        written["detached"] = plan.detaches.num_rows - _count(conflicts, "detach")
    if plan.restores.num_rows:
        written["restored"] = plan.restores.num_rows
    return written


#: what identifies the user a delete, disable or detach was planned for
_IDENTITY = ("username", "ad_username", "domain")
#: a detached user is a local user: no sync key, no owner, no sync bookkeeping; every other value stays
LOCAL = {"ad_username": None, "domain": None, "source": None, "disabled_by_sync": False, "left_at": None}
#: bookkeeping an update rewrites without the optimistic check (its old value is the sync's own, not an admin's)
UNCHECKED = frozenset({"left_at"})


def _still_the_same(conn: Connection, source: str, batch: list[dict], what: str) -> tuple[list[dict], list[Conflict]]:
    """Of the users a batch of deletes / disables / detaches was planned for, their rows where still as the diff
    saw them (locked for the rest of the transaction on PostgreSQL), and a conflict for each of the others. A user
    the application protected (``sync_protected``) since the diff is not deleted or disabled."""
    query = select(users).where(users.c.id.in_([r["id"] for r in batch]), users.c.source == source).with_for_update()
    now_rows = {r["id"]: dict(r) for r in conn.execute(query).mappings()}
    rows, lost = [], []
    for planned in batch:
        row = now_rows.get(planned["id"])
        protected = row is not None and row["sync_protected"] and what != "detach"
        if row is not None and all(row[c] == planned[c] for c in _IDENTITY) and not protected:
            rows.append(row)
            continue
        state = "deleted (or given to another source)" if row is None else \
            "protected (sync_protected)" if protected else "changed"
        lost.append(Conflict(planned["username"], f"{what} not applied: the user was {state} in the users table "
                                                  "during this run; the next run will reconcile", kind=what,
                             id=planned["id"]))
    return rows, lost


def _log_removals(user_log: UserLog, what: str, rows: list[dict], batch: list[dict], left_at: datetime) -> None:
    """Records of deletes (the whole row), disables and detaches (old → new of what they set)."""
    if what == "delete":
        user_log.removed(rows)
        return
    reasons = {p["id"]: p.get("reason") for p in batch}
    for row in rows:
        new = {"enabled": False, "disabled_by_sync": True, "left_at": left_at} if what == "disable" else LOCAL
        changes = {c: (row[c], v) for c, v in new.items() if row[c] != v}
        user_log.changed(DISABLED if what == "disable" else DETACHED, row, changes, reason=reasons.get(row["id"]))


def _log_updates(conn: Connection, user_log: UserLog, plan: ChangeTables, written: list[dict]) -> None:
    """Records of the updates written (each changed column old → new); a returning user's update is its return."""
    if not written:
        return
    rows = {r["id"]: dict(r) for r in conn.execute(select(users.c.id, *[users.c[c] for c in IDENTITY]).where(
        users.c.id.in_([p["_id"] for p in written]))).mappings()}
    returning = set(plan.returns.column("id").to_pylist())
    for p in written:
        changes = {c[5:]: (old, p[c[5:]]) for c, old in p.items() if c.startswith("_old_")}
        user_log.changed(RETURNED if p["_id"] in returning else UPDATED, rows[p["_id"]], changes)


def _log_decisions(user_log: UserLog, plan: ChangeTables) -> None:
    """The decisions that wrote nothing, as repeating records: skipped accounts, held (protected) users."""
    user_log.repeating(SKIPPED, [(s, None, s["code"], {"account": s["account"], "reason": s["reason"]})
                                 for s in plan.skipped.to_pylist()])
    user_log.repeating(HELD, [(h, h["id"], None, {"reason": h["reason"]}) for h in plan.holds.to_pylist()])


def _unapplied(conn: Connection, what: str, batch: list[dict]) -> list[Conflict]:
    """The updates of ``batch`` the statement did not write (the row changed since the diff), as conflicts."""
    columns = [k for k in batch[0] if k != "_id" and not k.startswith("_old_")]
    now_rows = {r["id"]: r for r in conn.execute(select(users).where(
        users.c.id.in_([p["_id"] for p in batch]))).mappings()}
    out = []
    for planned in batch:
        row = now_rows.get(planned["_id"])
        if row is not None and all(row[c] == planned[c] for c in columns):
            continue  # written (or already holding what the run wanted)
        state = "deleted" if row is None else "changed"
        name = row["username"] if row is not None else f"id {planned['_id']}"
        out.append(Conflict(name, f"{what} not applied: the user was {state} in the users table during this run; "
                                  "the next run will reconcile", kind="update", id=planned["_id"]))
    return out


def _count(conflicts: list[Conflict], kind: str) -> int:
    return sum(1 for c in conflicts if c.kind == kind)
