"""The change set as Arrow tables: what the diff writes to the run folder and apply and the report read.

Six tables — inserts (full rows), updates (per user the changed columns with old → new), deletes, disables,
skipped (account and reason), notes (report lines) — plus a few counts. ``ChangeSet`` (typed Python objects) stays the shape for
small plans and tests; ``ChangeTables`` holds a plan of any size and converts to a ``ChangeSet`` preview of
its first lines for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.compute as pc

from usersync.core.run_folder import RunFolder, TableRef
from usersync.plan.cases import CASES_SCHEMA, DECIDED_SCHEMA, MATCH, NUMBER, TAKES_SCHEMA
from usersync.plan.changes import LIFECYCLE, ChangeSet, Delete, Disable, Insert, Leaving, Update
from usersync.plan.tables import SKIPPED_SCHEMA, TIMESTAMP, USERS_SCHEMA, skipped_of
from usersync.rules.fields import FIELDS

#: Columns of an inserted row, in insert order.
INSERT_COLUMNS = [*FIELDS, "ad_username", "domain", "source", "external_id"]
#: Columns an update may change.
UPDATE_COLUMNS = [*FIELDS, "ad_username", "domain", "source", "external_id", "disabled_by_sync", "left_at"]

INSERTS_SCHEMA = pa.schema([USERS_SCHEMA.field(c) for c in INSERT_COLUMNS])
UPDATES_SCHEMA = pa.schema(
    [("id", pa.int64()), ("username", pa.string()), ("changed", pa.list_(pa.string()))]
    + [(f"{side}_{c}", USERS_SCHEMA.field(c).type) for c in UPDATE_COLUMNS for side in ("old", "new")]
)
LEAVERS_SCHEMA = pa.schema([("id", pa.int64()), ("username", pa.string()), ("ad_username", pa.string()),
                            ("domain", pa.string())])
LIFECYCLE_SCHEMA = pa.schema([*LEAVERS_SCHEMA, ("left_at", TIMESTAMP), ("until", TIMESTAMP), ("days", pa.int32()),
                              ("reason", pa.string())])
NOTES_SCHEMA = pa.schema([("note", pa.string())])
#: users put back by an undo: each deleted user's whole row as it was, row id included
RESTORES_SCHEMA = pa.schema([f for f in USERS_SCHEMA if f.name != "updated_at"])
SCHEMAS = {"inserts": INSERTS_SCHEMA, "updates": UPDATES_SCHEMA, "deletes": LEAVERS_SCHEMA,
           "disables": LEAVERS_SCHEMA, "skipped": SKIPPED_SCHEMA, "notes": NOTES_SCHEMA, "restores": RESTORES_SCHEMA,
           "cases": CASES_SCHEMA, "decided": DECIDED_SCHEMA, "takes": TAKES_SCHEMA,
           **{kind: LIFECYCLE_SCHEMA for kind, _count in LIFECYCLE}}
#: tables saved only when they have rows (an undo restores; cases, decisions and takes are the rare run's)
OPTIONAL = ("restores", "cases", "decided", "takes")
META = ("source", "read", "unchanged", "owned", "kept", "held", "seen", "as_of", "explained")


class PlanRef(TypedDict, total=False):
    """The change set in ``plan/``: its files (``ChangeTables.save``), its counts, and what apply needs."""

    tables: dict[str, dict[str, Any]]
    counts: dict[str, int]
    source: str
    read: int
    unchanged: int
    owned: int
    kept: int
    held: int
    as_of: str | None  # the run's time leavers' days are counted against
    explained: dict[str, Any] | None  # a single-account run: what the diff decided about the account
    seen: Any  # the users table's fingerprint when diff read it (apply re-checks claims if it changed)
    removals: int
    writes: int
    cursor: str  # carried from extract: the delta link apply stores
    reading: str
    warnings: list[str]  # carried from extract: what the read met
    account: str  # a single-account run: the account it planned for
    confirmation: dict[str, Any]  # removals confirmed with the source (``usersync.run.confirm.Confirmation``)
    guard: dict[str, Any]  # what the change guard judges: the read's drop, fields over their limits
    parts: list[Any]  # the mapped partitions (``Mapped``), kept while removals wait to be confirmed after approval


@dataclass
class ChangeTables:
    source: str
    inserts: pa.Table = field(default_factory=INSERTS_SCHEMA.empty_table)
    updates: pa.Table = field(default_factory=UPDATES_SCHEMA.empty_table)
    deletes: pa.Table = field(default_factory=LEAVERS_SCHEMA.empty_table)
    disables: pa.Table = field(default_factory=LEAVERS_SCHEMA.empty_table)
    skipped: pa.Table = field(default_factory=SKIPPED_SCHEMA.empty_table)
    pending: pa.Table = field(default_factory=LIFECYCLE_SCHEMA.empty_table)
    returns: pa.Table = field(default_factory=LIFECYCLE_SCHEMA.empty_table)
    holds: pa.Table = field(default_factory=LIFECYCLE_SCHEMA.empty_table)
    detaches: pa.Table = field(default_factory=LIFECYCLE_SCHEMA.empty_table)
    restores: pa.Table = field(default_factory=RESTORES_SCHEMA.empty_table)
    #: cases this run found (numbers held aside, proposed matches), the decisions it applied, the numbers
    #: ``give`` decisions take from their holders (``plan.cases``)
    cases: pa.Table = field(default_factory=CASES_SCHEMA.empty_table)
    decided: pa.Table = field(default_factory=DECIDED_SCHEMA.empty_table)
    takes: pa.Table = field(default_factory=TAKES_SCHEMA.empty_table)
    read: int = 0
    unchanged: int = 0
    owned: int = 0
    kept: int = 0
    held: int = 0
    #: report lines besides the changes (e.g. why an account was re-created)
    notes: list[str] = field(default_factory=list)
    #: the users table's ``recheck.fingerprint`` when the diff read it
    seen: list | None = None
    #: the run's time (ISO 8601, UTC) leavers' days are counted against; the day a leaver left is this
    as_of: str | None = None
    #: a single-account run: what the diff decided about that account (``diff.decide``), which its explanation
    #: renders
    explained: dict[str, Any] | None = None
    #: set by apply: planned changes left out because the table changed during the run (``recheck.Conflict``)
    conflicts: list = field(default_factory=list)
    #: set by apply: what it did to the cases (``store.cases.CaseCounts.to_json``)
    recorded: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return (self.inserts.num_rows + self.updates.num_rows + self.deletes.num_rows + self.disables.num_rows
                + self.detaches.num_rows + self.restores.num_rows + self.takes.num_rows)

    @property
    def removals(self) -> int:
        return self.deletes.num_rows + self.disables.num_rows

    def counts(self) -> dict[str, int]:
        return {"read": self.read, "inserted": self.inserts.num_rows, "updated": self.updates.num_rows,
                "deleted": self.deletes.num_rows, "disabled": self.disables.num_rows,
                "unchanged": self.unchanged, "skipped": self.skipped.num_rows,
                **{count: getattr(self, kind).num_rows for kind, count in LIFECYCLE if getattr(self, kind).num_rows},
                **({"restored": self.restores.num_rows} if self.restores.num_rows else {}),
                **{name: n for name, n in self.case_counts().items() if n}}

    def case_counts(self) -> dict[str, int]:
        """Numbers held aside, matches proposed, and decisions applied by this run."""
        kinds = self.cases.column("kind").to_pylist()
        return {"numbers_held": kinds.count(NUMBER), "proposed": kinds.count(MATCH),
                "decisions": self.decided.num_rows}

    def keep_as_local(self, reason: str) -> None:
        """Turn every planned removal (delete, disable) into a detach: those users become local users, kept
        as they are; the rest of the change set is unchanged."""
        leavers = pa.concat_tables([self.deletes, self.disables])
        detached = leavers.append_column("left_at", pa.nulls(leavers.num_rows, TIMESTAMP)) \
            .append_column("until", pa.nulls(leavers.num_rows, TIMESTAMP)) \
            .append_column("days", pa.nulls(leavers.num_rows, pa.int32())) \
            .append_column("reason", pa.array([reason] * leavers.num_rows, pa.string()))
        self.detaches = pa.concat_tables([self.detaches, detached.cast(LIFECYCLE_SCHEMA)])
        self.deletes, self.disables = LEAVERS_SCHEMA.empty_table(), LEAVERS_SCHEMA.empty_table()
        pending_ids = pa.array(sorted(set(leavers.column("id").to_pylist())), pa.int64())
        self.pending = self.pending.filter(pc.invert(pc.is_in(self.pending["id"], value_set=pending_ids)))

    def update_groups(self) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        """Updates grouped by the set of columns they change: ``{columns: [{"_id", column: new, "_old_<column>":
        old, …}]}`` (old: what the diff saw, for the optimistic check)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in self.updates.to_pylist():
            columns = tuple(sorted(row["changed"]))
            groups.setdefault(columns, []).append({"_id": row["id"], **{c: row[f"new_{c}"] for c in columns},
                                                   **{f"_old_{c}": row[f"old_{c}"] for c in columns}})
        return groups

    # --- files ---------------------------------------------------------------------------------------------

    def save(self, folder: RunFolder, prefix: str = "plan") -> PlanRef:
        """Write the tables; returns the XCom reference (counts and file references, no data)."""
        data = {**{n: getattr(self, n) for n in SCHEMAS if n != "notes"},
                "notes": pa.table({"note": pa.array(self.notes, pa.string())})}
        refs = {name: folder.write(f"{prefix}/{name}.parquet", data[name], SCHEMAS[name]).to_json()
                for name in SCHEMAS if name not in OPTIONAL or getattr(self, name).num_rows}
        return PlanRef(source=self.source, read=self.read, unchanged=self.unchanged, owned=self.owned, kept=self.kept,
                       held=self.held, seen=self.seen, as_of=self.as_of, counts=self.counts(), writes=self.writes,
                       removals=self.removals, tables=refs, explained=self.explained)

    @classmethod
    def load(cls, folder: RunFolder, ref: Mapping[str, Any], limit: int | None = None) -> ChangeTables:
        """Read a saved plan; with ``limit``, only the first ``limit`` rows of each change table (skipped: all)."""
        tables = {}
        for name in SCHEMAS:
            if name not in ref["tables"]:  # saved before this table existed
                tables[name] = SCHEMAS[name].empty_table()
                continue
            table_ref = TableRef.from_json(ref["tables"][name])
            tables[name] = folder.read(table_ref) if limit is None or name == "skipped" else folder.head(table_ref, limit)
        notes = tables.pop("notes").column("note").to_pylist()
        meta: dict[str, Any] = {k: ref.get(k) for k in META}
        return cls(**meta, **tables, notes=notes)

    # --- typed objects -------------------------------------------------------------------------------------

    def to_changeset(self, totals: dict[str, int] | None = None) -> ChangeSet:
        """The typed ``ChangeSet``; ``totals`` (from a saved plan's counts) marks it as a preview."""
        plan = ChangeSet(
            source=self.source, read=self.read, unchanged=self.unchanged, owned=self.owned, kept=self.kept,
            held=self.held, notes=list(self.notes),
            inserts=[Insert(row) for row in self.inserts.to_pylist()],
            updates=[Update(row["id"], row["username"], {c: (row[f"old_{c}"], row[f"new_{c}"]) for c in row["changed"]})
                     for row in self.updates.to_pylist()],
            deletes=[Delete(**row) for row in self.deletes.to_pylist()],
            disables=[Disable(**row) for row in self.disables.to_pylist()],
            skipped=skipped_of(self.skipped),
            **self._leavings(),
        )
        if totals is not None:
            plan.totals = {"inserts": totals["inserted"], "updates": totals["updated"],
                           "deletes": totals["deleted"], "disables": totals["disabled"],
                           **{kind: totals.get(count, 0) for kind, count in LIFECYCLE}}
        return plan

    def _leavings(self) -> dict[str, Any]:
        return {kind: [Leaving(**row) for row in getattr(self, kind).to_pylist()] for kind, _count in LIFECYCLE}

    @classmethod
    def from_changeset(cls, plan: ChangeSet) -> ChangeTables:
        updates = []
        for u in plan.updates:
            row: dict[str, Any] = {"id": u.id, "username": u.username, "changed": list(u.changes)}
            for column, (old, new) in u.changes.items():
                row[f"old_{column}"], row[f"new_{column}"] = old, new
            updates.append(row)
        return cls(
            source=plan.source, read=plan.read, unchanged=plan.unchanged, owned=plan.owned, kept=plan.kept,
            held=plan.held, notes=list(plan.notes),
            inserts=pa.Table.from_pylist([i.row for i in plan.inserts], schema=INSERTS_SCHEMA),
            updates=pa.Table.from_pylist(updates, schema=UPDATES_SCHEMA),
            deletes=pa.Table.from_pylist([d.__dict__ for d in plan.deletes], schema=LEAVERS_SCHEMA),
            disables=pa.Table.from_pylist([d.__dict__ for d in plan.disables], schema=LEAVERS_SCHEMA),
            skipped=pa.Table.from_pylist([s.__dict__ for s in plan.skipped], schema=SKIPPED_SCHEMA),
            **{kind: pa.Table.from_pylist([x.__dict__ for x in getattr(plan, kind)], schema=LIFECYCLE_SCHEMA)
               for kind, _count in LIFECYCLE},
        )


def preview(folder: RunFolder, ref: Mapping[str, Any], lines: int) -> ChangeSet:
    """A report's view of a saved plan: true counts, the first ``lines`` changes of each kind, every skip."""
    return ChangeTables.load(folder, ref, limit=lines).to_changeset(totals=ref["counts"])
