"""How a run reads a delta-capable source, and why: in full, or only the changes since the stored position.

What holds for every source is decided here — a trigger asked for a full read, nothing stored yet, the rules
changed, the last full read is too old; whether the stored position itself still holds (the same server, the
same database, a position not in the future) only the reader can say (``Source.position_holds``). The choice is
made once per run, at ``check_source``, and recorded in the report with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from usersync.rules import Rules
from usersync.sources.read_state import ReadPosition


def rules_hash(rules: Rules) -> str:
    """SHA-256 of what shapes the result (source, fields, safety): a change there needs a full read;
    comments, schedule, alarms, report settings or how a blocked run is approved do not."""
    shaping = rules.model_dump_json(include={"source": True, "fields": True,
                                             "safety": {"deletion", "max_deletes", "max_delete_percent"}})
    return hashlib.sha256(shaping.encode()).hexdigest()


@dataclass(frozen=True)
class Watermark:
    """A source's read position as stored after a run applied: where and how far it read, under which rules,
    and when it last read in full."""

    source: str
    read: ReadPosition
    rules_hash: str
    full_at: datetime
    saved_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "read": self.read.to_json(), "rules_hash": self.rules_hash,
                "full_at": self.full_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watermark:
        return cls(data["source"], ReadPosition.from_json(data["read"]), data["rules_hash"],
                   datetime.fromisoformat(data["full_at"]))


@dataclass(frozen=True)
class ReadPlan:
    """How this run reads the source, why, the position a delta read continues from, and the watermark to
    store if the run applies."""

    mode: str  # "full" | "delta"
    reason: str
    since: ReadPosition | None  # delta: the stored position the reader continues from
    watermark: Watermark

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "since": self.since.to_json() if self.since else None,
                "watermark": self.watermark.to_json()}

    def describe(self, position: Callable[[ReadPosition], str]) -> str:
        """In words; ``position`` says a stored position as its reader reads it."""
        if self.mode == "delta" and self.since is not None:
            return f"delta — {position(self.since)} ({self.reason})"
        return f"full ({self.reason})"


def choose(rules: Rules, stored: Watermark | None, now_at: ReadPosition,
           holds: Callable[[ReadPosition, ReadPosition], str | None], now: datetime | None = None,
           full_sync: bool | str = False) -> ReadPlan:
    """Delta when the stored position still holds; else full, with the reason an admin can act on
    (``full_sync``: read in full — a text says why). ``holds(stored, now_at)`` is the reader's answer: None, or
    why the stored position no longer holds."""
    assert rules.source.delta is not None, "only delta sources choose how to read"
    now = now or datetime.now(UTC)
    digest, every = rules_hash(rules), rules.source.delta.full_every_days

    def plan(mode: str, reason: str) -> ReadPlan:
        if mode == "delta" and stored is not None:  # what the reader does not find anew (a delta link) carries on
            at = ReadPosition(now_at.server, {**stored.read.position, **now_at.position})
            return ReadPlan(mode, reason, stored.read, Watermark(rules.source.name, at, digest, stored.full_at))
        return ReadPlan(mode, reason, None, Watermark(rules.source.name, now_at, digest, now))

    if full_sync:
        return plan("full", full_sync if isinstance(full_sync, str) else "asked for by the trigger parameter full_sync")
    if stored is None:
        return plan("full", "no watermark yet: first run, or the last one did not apply")
    why = holds(stored.read, now_at)
    if why is not None:
        return plan("full", why)
    if stored.rules_hash != digest:
        return plan("full", "the rules changed since the watermark")
    if now - stored.full_at >= timedelta(days=every):
        return plan("full", f"the last full read is {(now - stored.full_at).days} day(s) old "
                            f"(delta.full_every_days = {every})")
    saved = f"watermark of {stored.saved_at:%Y-%m-%d %H:%M} UTC, " if stored.saved_at else ""
    return plan("delta", f"{saved}last full read {stored.full_at:%Y-%m-%d %H:%M} UTC")
