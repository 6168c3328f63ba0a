"""Helpers for pandas columns backed by Arrow, shared by the diff and the uniqueness checks."""

from __future__ import annotations

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
