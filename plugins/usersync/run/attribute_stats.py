"""What the last read held per source attribute — share empty, distinct values, a few examples — shown beside each
mapped field in the rules editor, so a wrong attribute shows before it runs (midPoint's resource wizard shows the
same statistics beside its mappings). Read from the run folder's records: no query to the source."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: examples shown per attribute
EXAMPLES = 3


@dataclass(frozen=True)
class AttributeStats:
    rows: int
    empty: int
    distinct: int
    examples: tuple[str, ...]

    @property
    def empty_share(self) -> float:
        return self.empty / self.rows if self.rows else 0.0

    def line(self) -> str:
        shown = ", ".join(self.examples) if self.examples else "none"
        return (f"{self.empty_share:.0%} empty, {self.distinct} distinct of {self.rows}; e.g. {shown}")


def attribute_stats(run_dir, attributes: list[str]) -> dict[str, AttributeStats]:
    """Statistics of ``attributes`` over the records the run in ``run_dir`` read (those it did not read are left
    out; an empty dict when the run kept no records)."""
    records = run_dir / "records"
    parts = sorted(records.glob("part-*.parquet"), key=str) if records.exists() else []
    tables = []
    for part in parts:
        with part.open("rb") as fh:
            schema = pq.read_schema(fh)
            fh.seek(0)
            wanted = [a for a in dict.fromkeys(attributes) if a in schema.names]
            tables.append(pq.read_table(fh, columns=wanted))
    if not tables:
        return {}
    table = pa.concat_tables(tables, promote_options="default")
    out = {}
    for name in table.column_names:
        column = table.column(name)
        filled = pc.drop_null(pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), None, column))
        distinct = pc.unique(filled)
        out[name] = AttributeStats(len(column), len(column) - len(filled), len(distinct),
                                   tuple(str(v) for v in distinct.slice(0, EXAMPLES).to_pylist()))
    return out
