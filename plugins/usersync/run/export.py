"""A run's change set as one CSV an admin opens in a spreadsheet: one line per change, updates one line per
changed field (old → new), skipped accounts with the reason. Streamed a batch at a time: a first import of a
million users is a million lines, never a million rows in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from usersync.core.run_folder import RunFolder, TableRef

HEADER = ("change", "username", "ad_username", "domain", "field", "old", "new", "reason")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "?"


#: the leavers' tables, one line per user: (change, field, reason)
LIFECYCLE_LINES = {
    "pending": lambda r: ("pending deletion", "", f"gone since {_when(r['left_at'])}, deleted on {_when(r['until'])}"),
    "returns": lambda r: ("returned", "", f"returned after {r['days']} day(s)"),
    "holds": lambda r: ("held", "", r["reason"] or "protected"),
    "detaches": lambda r: ("detach", "", r["reason"] or "kept as a local user"),
}


def _lines(kind: str, row: dict[str, Any]) -> Iterator[tuple]:
    if kind == "inserts":
        for column, value in row.items():
            if column not in ("username", "ad_username", "domain") and value not in (None, ""):
                yield ("insert", row.get("username"), row.get("ad_username"), row.get("domain"), column, "", value, "")
    elif kind == "updates":
        for column in row["changed"]:
            yield ("update", row["username"], row.get("new_ad_username") or "", row.get("new_domain") or "", column,
                   row[f"old_{column}"], row[f"new_{column}"], "")
    elif kind in ("deletes", "disables"):
        yield (kind[:-1], row["username"], row["ad_username"], row["domain"], "", "", "", "no longer in the source")
    elif kind in LIFECYCLE_LINES:
        change, field, reason = LIFECYCLE_LINES[kind](row)
        yield (change, row["username"], row["ad_username"] or "", row["domain"] or "", field, "", "", reason)
    else:  # skipped
        yield ("skip", "", row.get("ad_username") or "", row.get("domain") or "", "", "", "", f"{row['account']}: {row['reason']}")


#: what a spreadsheet reads as the start of a formula (or a cell it re-parses): such a cell gets a leading '
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert(line: tuple) -> tuple:
    """A line whose cells a spreadsheet shows as text: directory values are anyone's to write, and a value such as
    ``=HYPERLINK(...)`` would run in the admin's spreadsheet."""
    return tuple(f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v for v in line)


def change_set_csv(folder: RunFolder, plan_ref: dict[str, Any]) -> Iterator[str]:
    """The CSV text in pieces; every file is checked against its reference first (``RunDataError`` if damaged)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for kind in ("inserts", "updates", "deletes", "disables", *LIFECYCLE_LINES, "skipped"):
        if kind not in plan_ref["tables"]:  # a change set saved before the leavers' tables existed
            continue
        for batch in folder.batches(TableRef.from_json(plan_ref["tables"][kind]), batch_size=10_000):
            for row in batch.to_pylist():
                writer.writerows(map(inert, _lines(kind, row)))
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
