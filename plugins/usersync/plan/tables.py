"""Typed Arrow tables for a run's data: source records, mapped users, skipped accounts, the users table.

Rows are turned into columns a batch at a time, so no step holds a whole directory as Python objects; pandas
reads these tables with Arrow-backed columns for the columnar diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from usersync.core.users_table import users
from usersync.plan.changes import Skipped
from usersync.plan.mapping import MappedUser
from usersync.rules.fields import BOOL_FIELDS, Policy
from usersync.sources.record import SourceRecord

if TYPE_CHECKING:
    import pandas as pd

BATCH_ROWS = 20_000
KEY_COLUMNS = ("account", "ad_username", "domain", "external_id")
SKIPPED_SCHEMA = pa.schema([("account", pa.string()), ("reason", pa.string()),
                            ("ad_username", pa.string()), ("domain", pa.string()), ("external_id", pa.string()),
                            ("code", pa.string())])


def _type(field: str) -> pa.DataType:
    return pa.bool_() if field in BOOL_FIELDS else pa.string()


# --- source records: account, problem, one text column per attribute the rules read -------------------------

def records_schema(attributes: list[str]) -> pa.Schema:
    return pa.schema([("account", pa.string()), ("problem", pa.string())] + [(a, pa.string()) for a in attributes])


def record_batches(records: Iterable[SourceRecord], attributes: list[str], size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Source records → batches holding each attribute's first value as text (what ``SourceRecord.get`` reads)."""
    schema = records_schema(attributes)
    names = ["account", "problem", *attributes]
    columns: list[list] = [[] for _ in names]
    for record in records:
        columns[0].append(record.account)
        columns[1].append(record.problem)
        for i, attribute in enumerate(attributes, start=2):
            columns[i].append(record.get(attribute))
        if len(columns[0]) >= size:
            yield pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in columns], schema=schema)
            columns = [[] for _ in names]
    if columns[0]:
        yield pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in columns], schema=schema)


def records_of(batch: pa.RecordBatch) -> Iterator[SourceRecord]:
    names = [n for n in batch.schema.names if n not in ("account", "problem")]
    for row in batch.to_pylist():
        yield SourceRecord(row["account"], {n: row[n] for n in names}, row["problem"])


# --- mapped users: the sync key, the anchor, "hold" and one column per field the rules write ----------------

def mapped_schema(value_fields: list[str]) -> pa.Schema:
    return pa.schema([(c, pa.string()) for c in KEY_COLUMNS] + [("hold", pa.bool_())]
                     + [(f, _type(f)) for f in value_fields])


def mapped_batch(mapped: list[MappedUser], value_fields: list[str]) -> pa.RecordBatch:
    schema = mapped_schema(value_fields)
    arrays = [
        pa.array([m.account for m in mapped], pa.string()),
        pa.array([m.ad_username for m in mapped], pa.string()),
        pa.array([m.domain for m in mapped], pa.string()),
        pa.array([m.external_id for m in mapped], pa.string()),
        pa.array([m.hold for m in mapped], pa.bool_()),
    ] + [pa.array([m.values.get(f) for m in mapped], _type(f)) for f in value_fields]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def skipped_batch(skipped: list[Skipped]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([s.__dict__ for s in skipped], schema=SKIPPED_SCHEMA)


def skipped_of(table: pa.Table) -> list[Skipped]:
    return [Skipped(**{k: v for k, v in row.items() if v is not None or k != "code"}) for row in table.to_pylist()]


# --- the users table ----------------------------------------------------------------------------------------

USER_COLUMNS = [c.name for c in users.columns]
TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {"id": pa.int64(), "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "left_at": TIMESTAMP}
_FLAGS = {*BOOL_FIELDS, "disabled_by_sync", "sync_protected"}
USERS_SCHEMA = pa.schema([(c, _ARROW_TYPES.get(c, pa.bool_() if c in _FLAGS else pa.string()))
                          for c in USER_COLUMNS])
#: the columns the diff reads (timestamps are not needed)
DIFF_COLUMNS = [c for c in USER_COLUMNS if c not in ("created_at", "updated_at")]


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas with Arrow-backed columns (strings stay compact; nulls stay nulls)."""
    import pandas as pd  # only the diff needs pandas; other tasks start faster without it

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Plain row dicts (tests, small callers) → the users-table frame, missing columns as nulls."""
    rows = list(rows)
    arrays = {c: pa.array([r.get(c) for r in rows], type=USERS_SCHEMA.field(c).type) for c in DIFF_COLUMNS}
    return to_frame(pa.table(arrays))


def value_fields_of(rules) -> list[str]:
    """The fields a rules file gives a value (every field but ``keep``), in the rules' order."""
    return [f for f, rule in rules.fields.items() if rule.policy is not Policy.KEEP]
