"""Helpers for pandas columns backed by Arrow, shared by the diff and the uniqueness checks."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def casefold(s: pd.Series) -> pd.Series:
    """``str.casefold`` per value, in Arrow for ASCII values (where it equals lower-casing), in Python for the rest."""
    values = pa.array(s.array if isinstance(s.dtype, pd.ArrowDtype) else s.to_list(), type=pa.string(), from_pandas=True)
    folded = pc.utf8_lower(values)
    ascii_ = pc.fill_null(pc.string_is_ascii(values), True)
    if not pc.all(ascii_).as_py():
        other = [v.casefold() if v is not None else None for v in values.to_pylist()]
        folded = pc.if_else(ascii_, folded, pa.array(other, pa.string()))
    return pd.Series(folded, index=s.index, dtype=pd.ArrowDtype(pa.string()))


def frame_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame's columns of ``schema``; a column the frame lacks is all nulls of its type."""
    present = pa.schema([f for f in schema if f.name in frame])
    table = pa.Table.from_pandas(frame[present.names], schema=present, preserve_index=False)
    for name in (n for n in schema.names if n not in frame):
        table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names)


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """A few rows as plain dicts, nulls as None (for the protection conditions)."""
    return rows.astype(object).where(rows.notna(), None).to_dict("records")
