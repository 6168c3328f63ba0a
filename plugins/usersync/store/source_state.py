"""What the users database keeps of each source between runs (``source_state``): the read position its last
applied run stored, and facts about the source beyond it (``facts``: JSON the features that need them own).

This module stores and loads; it decides nothing. The position is written inside the apply transaction
(``apply_tables(..., watermark=...)``), so it moves only when the change set it belongs to was written — never on
a dry run, a blocked or a failed run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from usersync.core.users_table import source_state
from usersync.plan.read_plan import Watermark
from usersync.sources.read_state import ReadPosition
from usersync.store.schema_version import ensure_schema


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def load_watermark(engine: Engine, source: str) -> Watermark | None:
    """The read position ``source``'s last applied run stored; None before the first."""
    ensure_schema(engine)
    with engine.connect() as conn:
        row = conn.execute(select(source_state).where(source_state.c.source == source)).mappings().first()
    if row is None or row["read_server"] is None:
        return None
    full_at = _utc(row["full_at"])
    assert full_at is not None, "a stored position has the time of its last full read"
    return Watermark(source, ReadPosition(row["read_server"], json.loads(row["read_position"] or "{}")),
                     row["rules_hash"], full_at, _utc(row["saved_at"]))


def save_watermark(conn: Connection, watermark: Watermark, now: datetime) -> None:
    """Store ``watermark`` as its source's read position (inside the caller's transaction); facts stay."""
    values = {"read_server": watermark.read.server, "read_position": json.dumps(watermark.read.position),
              "rules_hash": watermark.rules_hash, "full_at": watermark.full_at, "saved_at": now}
    _upsert(conn, watermark.source, values)


def load_facts(engine: Engine, source: str) -> dict[str, Any]:
    """The facts kept for ``source`` ({} when none)."""
    ensure_schema(engine)
    with engine.connect() as conn:
        text = conn.execute(select(source_state.c.facts).where(source_state.c.source == source)).scalar()
    return json.loads(text) if text else {}


def save_facts(conn: Connection, source: str, facts: dict[str, Any], now: datetime) -> None:
    """Replace the facts kept for ``source`` (inside the caller's transaction); its read position stays."""
    _upsert(conn, source, {"facts": json.dumps(facts, sort_keys=True, default=str), "saved_at": now})


def _upsert(conn: Connection, source: str, values: dict[str, Any]) -> None:
    done = conn.execute(update(source_state).where(source_state.c.source == source).values(**values))
    if not done.rowcount:
        conn.execute(insert(source_state).values(source=source, **values))
