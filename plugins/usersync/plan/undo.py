"""The inverse of a finished run, from the per-user log's records of it: a change set like any other, so it goes
through the same guard, approval, apply and report.

Each write is reversed only for a user nobody changed since: no later record writes that user (a later run, an
undo, a detach), and the row still holds what the run left (else the application or an admin changed it). An
inserted user is deleted, an updated, returned, disabled or detached one gets the old values back, a deleted one is
restored with its row id and every value. Whatever cannot be reversed is listed with why, and left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from usersync.plan.change_tables import (
    LEAVERS_SCHEMA,
    RESTORES_SCHEMA,
    UPDATE_COLUMNS,
    UPDATES_SCHEMA,
    ChangeTables,
)
from usersync.plan.changes import claim_label, row_claims

#: columns a restored row is compared on when deciding whether an inserted user changed since
_BOOKKEEPING = frozenset({"created_at", "updated_at"})
#: what the log records of a write (``usersync.store.user_log``) and how it is undone
REVERSIBLE = ("inserted", "updated", "returned", "disabled", "detached", "deleted")


@dataclass(frozen=True)
class Record:
    """What the undo needs of one log record: the write, the user, the values before and after."""

    action: str
    user_id: int
    username: str | None
    changes: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # column → (old, new)
    row: Mapping[str, Any] = field(default_factory=dict)  # inserted or deleted: the whole row
    at: datetime | None = None  # when the run wrote it (the row's ``updated_at`` then)


@dataclass
class UndoPlan:
    tables: ChangeTables
    not_undone: list[str] = field(default_factory=list)  # "<user>: why", one per write left as it is


def plan_undo(source: str, run_id: str, records: list[Record], now_rows: Mapping[int, Mapping[str, Any]],
              changed_by: Mapping[int, str], holders: Mapping[str, str]) -> UndoPlan:
    """The change set that reverses ``records`` (one run's writes).

    ``now_rows``: the users table's rows of those users now, by id; ``changed_by``: per user written since, by
    what (a run id); ``holders``: who holds each claim now (``u:`` username, ``k:`` sync key, ``n:`` number →
    username), so a restored user never takes a name or number someone has since."""
    deletes, updates, restores, not_undone = [], [], [], []
    for record in reversed(records):
        if record.action not in REVERSIBLE:
            continue
        name = record.username or f"id {record.user_id}"
        row = now_rows.get(record.user_id)
        if record.user_id in changed_by:
            not_undone.append(f"{name}: written again since, by {changed_by[record.user_id]}")
            continue
        if record.action == "deleted":
            why = _restore_refused(record, row, holders)
            if why:
                not_undone.append(f"{name}: not restored, {why}")
            else:
                restores.append({**record.row, "id": record.user_id})
            continue
        if row is None:
            not_undone.append(f"{name}: deleted since (not by a sync)")
            continue
        if record.at is not None and row.get("updated_at") is not None and row["updated_at"] > record.at:
            not_undone.append(f"{name}: changed since in the users table (updated {row['updated_at']:%Y-%m-%d %H:%M} "
                              "UTC, not by a sync)")
            continue
        if record.action == "inserted":
            moved = [c for c, v in record.row.items() if c not in _BOOKKEEPING and row.get(c) != v]
            if moved:
                not_undone.append(f"{name}: not deleted, changed since in the users table ({', '.join(sorted(moved))})")
            else:
                deletes.append({"id": record.user_id, "username": row["username"], "ad_username": row["ad_username"],
                                "domain": row["domain"]})
            continue
        moved = [c for c, (_old, new) in record.changes.items() if row.get(c) != new]
        if moved:
            not_undone.append(f"{name}: not put back, changed since in the users table ({', '.join(sorted(moved))})")
            continue
        back = {c: (new, old) for c, (old, new) in record.changes.items() if c in UPDATE_COLUMNS}
        updates.append({"id": record.user_id, "username": row["username"], "changed": sorted(back),
                        **{f"old_{c}": v[0] for c, v in back.items()}, **{f"new_{c}": v[1] for c, v in back.items()}})
    tables = ChangeTables(source=source, deletes=pa.Table.from_pylist(deletes, schema=LEAVERS_SCHEMA),
                          updates=pa.Table.from_pylist(updates, schema=UPDATES_SCHEMA),
                          restores=pa.Table.from_pylist(restores, schema=RESTORES_SCHEMA))
    tables.notes = _notes(run_id, tables, not_undone)
    return UndoPlan(tables, not_undone)


def _restore_refused(record: Record, row: Mapping[str, Any] | None, holders: Mapping[str, str]) -> str | None:
    """Why a deleted user cannot be put back (its row id, username, sync key or a number is someone's now)."""
    if row is not None:
        return f"row id {record.user_id} is user {row.get('username')!r} now"
    for claim in sorted(row_claims(record.row), key=lambda c: ("ukn".index(c[0]), c)):  # username first
        if claim in holders:
            return f"{claim_label(claim)} is held by user {holders[claim]!r} now"
    return None


def _notes(run_id: str, tables: ChangeTables, not_undone: list[str]) -> list[str]:
    notes = [f"undo of run {run_id}: {tables.restores.num_rows} deleted user(s) restored, {tables.updates.num_rows} "
             f"put back as they were, {tables.deletes.num_rows} inserted user(s) deleted; {len(not_undone)} write(s) "
             "not undone (below)",
             "values this run wrote back to the directory (write-back) are not reverted there: the directory may "
             "have acted on them, and the next run's write-back plans them again from the users table"]
    notes += [f"restored: {r['username']} (id {r['id']})" for r in tables.restores.to_pylist()]
    notes += [f"not undone: {line}" for line in not_undone]
    return notes
