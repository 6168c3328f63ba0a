"""One planned write-back value, and the Arrow table a run keeps them in (``writeback/plan.parquet``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields

import pyarrow as pa


@dataclass(frozen=True)
class Write:
    """One value to write: ``attribute`` of the entry ``target`` (a DN, an object id) from ``old`` to ``new``
    (None: empty). ``old`` is the value the run read — the write happens only while the directory still holds
    it."""

    user_id: int
    username: str
    account: str  # the account as the run read it (its DN, its UPN): what the report names
    target: str
    attribute: str
    old: str | None
    new: str | None

    def line(self) -> str:
        old, new = (f"({shown(v)})" if v is None else shown(v) for v in (self.old, self.new))
        return f"{self.username}: {self.attribute} {old} → {new}"


def shown(value: str | None) -> str:
    """A directory value in a message: quoted, or ``empty``."""
    return "empty" if value is None else repr(value)


WRITE_SCHEMA = pa.schema([("user_id", pa.int64()), ("username", pa.string()), ("account", pa.string()),
                          ("target", pa.string()), ("attribute", pa.string()), ("old", pa.string()),
                          ("new", pa.string())])


def writes_table(writes: list[Write]) -> pa.Table:
    return pa.Table.from_pylist([asdict(w) for w in writes], schema=WRITE_SCHEMA)


def writes_of(table: pa.Table) -> Iterator[Write]:
    names = [f.name for f in fields(Write)]
    for row in table.to_pylist():
        yield Write(**{n: row[n] for n in names})
