"""Delta sync's bookkeeping: the watermark in ``sync_state`` and the choice between a delta and a full read.

The watermark is written inside the apply transaction (``apply_tables(..., watermark=...)``), so it moves
only when the change set it belongs to was written — never on a dry run, a blocked or a failed run. The
choice is made once per run, at ``check_source``, and recorded in the report with its reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from usersync.core.users_table import sync_state
from usersync.rules import Rules
from usersync.store.schema_version import ensure_schema


def rules_hash(rules: Rules) -> str:
    """SHA-256 of what shapes the result (source, fields, safety): a change there needs a full read;
    comments, schedule, alarms, report settings or how a blocked run is approved do not."""
    shaping = rules.model_dump_json(include={"source": True, "fields": True,
                                             "safety": {"deletion", "max_deletes", "max_delete_percent"}})
    return hashlib.sha256(shaping.encode()).hexdigest()


@dataclass(frozen=True)
class Watermark:
    source: str
    server: str
    invocation_id: str
    usn: int
    rules_hash: str
    full_at: datetime
    saved_at: datetime | None = None
    #: where the next delta read starts when the source hands out an opaque link (Graph's deltaLink)
    cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "server": self.server, "invocation_id": self.invocation_id, "usn": self.usn,
                "rules_hash": self.rules_hash, "full_at": self.full_at.isoformat(), "cursor": self.cursor}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watermark:
        return cls(**{**data, "full_at": datetime.fromisoformat(data["full_at"])})


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def load_watermark(engine: Engine, source: str) -> Watermark | None:
    ensure_schema(engine)
    with engine.connect() as conn:
        row = conn.execute(select(sync_state).where(sync_state.c.source == source)).mappings().first()
    if row is None:
        return None
    return Watermark(**{**row, "full_at": _utc(row["full_at"]), "saved_at": _utc(row["saved_at"])})


def save_watermark(conn: Connection, watermark: Watermark, now: datetime) -> None:
    """Replace this source's watermark (inside the caller's transaction)."""
    conn.execute(delete(sync_state).where(sync_state.c.source == watermark.source))
    conn.execute(insert(sync_state).values(**{**watermark.to_json(), "full_at": watermark.full_at, "saved_at": now}))


@dataclass(frozen=True)
class ReadPlan:
    """How this run reads the source, why, and the watermark to store if it succeeds."""

    mode: str  # "full" | "delta"
    reason: str
    since: int | None
    watermark: Watermark

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "since": self.since, "watermark": self.watermark.to_json()}

    @property
    def cursor(self) -> str | None:
        """The stored link a delta read starts from (Graph), when the source uses one."""
        return self.watermark.cursor if self.mode == "delta" else None

    def describe(self) -> str:
        if self.mode == "delta" and self.cursor:
            return f"delta — changes since the last run's delta link ({self.reason})"
        if self.mode == "delta":
            return f"delta — entries changed since USN {self.since} ({self.reason})"
        return f"full ({self.reason})"


def choose(rules: Rules, stored: Watermark | None, dc: dict[str, Any], now: datetime,
           full_sync: bool | str = False) -> ReadPlan:
    """Delta when a usable watermark exists; else full, with the reason an admin can act on (``full_sync``: read
    in full — a text says why)."""
    digest = rules_hash(rules)
    assert rules.source.delta is not None, "only delta sources choose how to read"
    every = rules.source.delta.full_every_days

    def plan(mode: str, reason: str) -> ReadPlan:
        assert stored is not None or mode == "full", "a delta read needs a stored watermark"
        full_at = stored.full_at if stored is not None and mode == "delta" else now
        cursor = stored.cursor if stored is not None and mode == "delta" else None  # the extract sets the new link
        mark = Watermark(rules.source.name, dc["server"], dc["invocation_id"], int(dc["usn"]), digest, full_at,
                         cursor=cursor)
        return ReadPlan(mode, reason, stored.usn if stored is not None and mode == "delta" else None, mark)

    if full_sync:
        return plan("full", full_sync if isinstance(full_sync, str) else "asked for by the trigger parameter full_sync")
    if stored is None:
        return plan("full", "no watermark yet: first run, or the last one did not apply")
    if dc.get("cursors") and not stored.cursor:
        return plan("full", "no delta link stored yet")
    if stored.server != dc["server"]:
        return plan("full", f"another {'tenant' if dc.get('cursors') else 'domain controller'} ({dc['server']}; "
                            f"the watermark is of {stored.server})")
    if stored.invocation_id != dc["invocation_id"]:
        return plan("full", "the domain controller's database changed (new invocationId: restored from backup?)")
    if stored.rules_hash != digest:
        return plan("full", "the rules changed since the watermark")
    if now - stored.full_at >= timedelta(days=every):
        return plan("full", f"the last full read is {(now - stored.full_at).days} day(s) old "
                            f"(delta.full_every_days = {every})")
    if int(dc["usn"]) < stored.usn:
        return plan("full", f"the DC's USN {dc['usn']} is below the watermark {stored.usn}")
    if int(dc.get("scope_usn") or 0) > stored.usn:
        return plan("full", "membership of a member_of group changed (AD does not mark the users themselves)")
    return plan("delta", f"watermark of {stored.saved_at:%Y-%m-%d %H:%M} UTC, last full read "
                         f"{stored.full_at:%Y-%m-%d %H:%M} UTC")
