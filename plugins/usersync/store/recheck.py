"""Claims re-checked inside the apply transaction, after taking the users-table lock.

The diff decides uniqueness (usernames, sync keys, numbers) against the table as it was when the diff ran.
Another source may have applied since; so ``apply`` first serialises on the table (PostgreSQL advisory lock
``LOCK_KEY``; SQLite allows one writer at a time anyway) and then asks the table, in one query per column, who
holds each claim the plan's inserts and updates want. A holder the plan does not account for — not a row this
plan deletes, not a row whose update releases that very claim — got it after the diff: that insert or update is
left out with the reason, the rest of the plan applies. Leaving out an update can keep a claim another planned
change needed, so the check repeats until nothing more is left out. When the table's ``fingerprint`` (rows,
newest ``updated_at``) is what the diff saw, nobody wrote since and the join is skipped — the common case.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from sqlalchemy import Column, Connection, MetaData, String, Table, func, insert, literal, select

from usersync.core.users_table import users
from usersync.plan.change_tables import ChangeTables
from usersync.plan.changes import KEY_SEP, claim_label, row_claims
from usersync.rules.fields import NUMBER_FIELDS

#: pg_advisory_xact_lock key shared by every usersync apply on a database ("usersync" in ASCII)
LOCK_KEY = 0x7573657273796E63 & 0x7FFFFFFFFFFFFFFF
KEY_MOVES = "k:*"  # in an update's released claims: its row's sync key changes


def lock_users_table(conn: Connection) -> None:
    """Serialise applies: held until the transaction ends (PostgreSQL); SQLite's write lock does the same."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))


@dataclass(frozen=True)
class Conflict:
    """A planned change left out because the table changed under the run."""

    username: str | None
    reason: str
    kind: str = "claim"  # "claim" (left out before writing), "update", "delete", "disable"
    id: int | None = None  # the user's row id, when it has one


def claim_holders(conn: Connection, claims: set[str]) -> dict[str, set[tuple[int, str, str | None]]]:
    """Who holds each of ``claims`` now: claim → {(id, username, source)}; one temporary table, one join per column."""
    if not claims:
        return {}
    table = Table("usersync_claims", MetaData(), Column("claim", String, primary_key=True), prefixes=["TEMPORARY"])
    table.create(conn, checkfirst=True)
    try:
        ordered = sorted(claims)
        for i in range(0, len(ordered), 5000):
            conn.execute(insert(table), [{"claim": c} for c in ordered[i:i + 5000]])
        found: dict[str, set[tuple[int, str, str | None]]] = {}
        key = literal("k:") + func.lower(func.trim(users.c.ad_username)) + literal(KEY_SEP) + func.lower(func.trim(users.c.domain))
        forms = [literal("u:") + func.lower(users.c.username), key] + [literal("n:") + users.c[c] for c in NUMBER_FIELDS]
        for form in forms:
            query = select(table.c.claim, users.c.id, users.c.username, users.c.source).join(table, table.c.claim == form)
            for claim, id_, username, source in conn.execute(query):
                found.setdefault(claim, set()).add((id_, username, source))
        return found
    finally:
        table.drop(conn)


def fingerprint(conn: Connection) -> list:
    """What changes whenever usersync writes the table: (rows, newest updated_at). Every write sets updated_at."""
    rows, newest = conn.execute(select(func.count(), func.max(users.c.updated_at))).one()
    return [rows, newest.isoformat() if newest is not None else None]


def recheck(conn: Connection, plan: ChangeTables, seen: list | None) -> list[Conflict]:
    """Drop from ``plan`` the inserts and updates whose claims someone took since the diff; returns why.

    ``seen``: the table's ``fingerprint`` when the diff read it; unchanged means nobody wrote since, and the
    diff's verdicts stand (one aggregate query instead of a join per column).
    """
    if seen is not None and fingerprint(conn) == seen:
        return []
    deleted = set(plan.deletes.column("id").to_pylist())
    conflicts: list[Conflict] = []
    while True:
        inserts, updates = plan.inserts.to_pylist(), plan.updates.to_pylist()
        wanted_ins = [row_claims(row) for row in inserts]
        wanted_upd = [_changed_claims(row, "new_") for row in updates]
        released = {row["id"]: _changed_claims(row, "old_") for row in updates}
        holders = claim_holders(conn, set().union(*wanted_ins, *wanted_upd))

        def taken(claims: set[str], me: int | None) -> str | None:
            for claim in sorted(claims):
                for id_, username, source in sorted(holders.get(claim, ()), key=lambda h: h[0]):  # noqa: B023 - called inside this iteration only
                    gives_up = released.get(id_, ())  # noqa: B023
                    if id_ == me or id_ in deleted or claim in gives_up or (claim[0] == "k" and KEY_MOVES in gives_up):
                        continue
                    return (f"{claim_label(claim)} was taken by user {username!r} (source {source or 'none'}) while "
                            "this run was running; the next run will reconcile")
            return None

        drop_ins, drop_upd = [], []
        for i, claims in enumerate(wanted_ins):
            if why := taken(claims, None):
                drop_ins.append(i)
                conflicts.append(Conflict(inserts[i]["username"], why))
        for i, (row, claims) in enumerate(zip(updates, wanted_upd)):
            if why := taken(claims, row["id"]):
                drop_upd.append(i)
                conflicts.append(Conflict(row["username"], why))
        if not drop_ins and not drop_upd:
            return conflicts
        plan.inserts = _without(plan.inserts, drop_ins)
        plan.updates = _without(plan.updates, drop_upd)


def _changed_claims(row: dict, side: str) -> set[str]:
    """Username and number claims an update takes (``new_``) or gives up (``old_``).

    A change of the sync key is left to the database's unique index (two sources sharing one Domain's keys is
    a configuration error the diff already reports as "owned by source …").
    """
    claims = set()
    for column in ("username", *NUMBER_FIELDS):
        value = row.get(f"{side}{column}") if column in row["changed"] else None
        if value:
            claims.add(("u:" + value.lower()) if column == "username" else ("n:" + value))
    if side == "old_" and {"ad_username", "domain"} & set(row["changed"]):
        claims.add(KEY_MOVES)  # a renamed account gives up its old sync key
    return claims


def _without(table: pa.Table, rows: list[int]) -> pa.Table:
    drop = set(rows)
    return table.filter(pa.array([i not in drop for i in range(table.num_rows)])) if rows else table
