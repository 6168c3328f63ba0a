"""Removals confirmed account by account, for sources whose listing can shift while a read pages through it.

A source that pages by offset (``SourceSpecBase.listing_shifts``: SCIM's ``startIndex``, AXL's ``skip``) never
returns an account that slid back across a page boundary when an account before it was deleted during the read.
Read as it is, that account would be "gone". So every removal the diff plans (delete, disable, start of a grace
period) is asked of the source by the account's anchor or key (``Source.lookup``) before it is kept in the
plan: an account gone or out of scope confirms the removal; an account the source still has is read, mapped
and diffed as any other (and its user is not removed). More removals than the rules allow to confirm in one
run are not asked: the plan keeps them as unconfirmed and the guard stops the run for approval.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, select

from usersync.core.progress import Progress
from usersync.core.run_folder import RunFolder, TableRef
from usersync.core.users_table import users
from usersync.plan.change_tables import NOTES_SCHEMA
from usersync.plan.tables import record_batches, records_schema
from usersync.rules import Rules
from usersync.run.handover import Extracted, Mapped, PlanRef
from usersync.run.pipeline import diff_step, is_delta, last_state_per_entity, map_step
from usersync.sources.base import Source
from usersync.sources.read_state import SourceInfo
from usersync.sources.record import SourceRecord

log = logging.getLogger(__name__)
REMOVALS = ("deletes", "disables")  # a grace period starts with a disable


@dataclass
class Confirmation:
    """What confirming a run's removals found: ``asked`` removals looked up with ``requests`` requests, ``gone``
    confirmed, ``still_there`` accounts the read missed; ``waiting``: removals not asked (over ``limit``)."""

    how: str
    limit: int | None
    asked: int = 0
    gone: int = 0
    still_there: int = 0
    requests: int = 0
    waiting: int = 0

    def notes(self) -> list[str]:
        out = []
        if self.asked:
            out.append(f"removals confirmed with the source account by account ({self.how}): {self.gone} of "
                       f"{self.asked} gone or out of scope, {self.still_there} still there — missed by the read "
                       f"because its listing shifted while it paged, so synced as read now, not removed "
                       f"({self.requests} request(s))")
        if self.waiting:
            out.append(f"{self.waiting} removal(s) not confirmed: more than safety.max_confirmations "
                       f"({self.limit}) in one run; nothing is removed before each is confirmed (after approval)")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def needs_confirmation(rules: Rules, info: SourceInfo) -> bool:
    """Whether this run's removals are confirmed: a whole read of a source whose listing can shift."""
    return rules.source.listing_shifts is not None and not info.get("account") and not is_delta(info)


def confirm_step(rules: Rules, source: Source, info: SourceInfo, parts: list[Mapped], engine: Engine,
                 folder: RunFolder, plan_ref: PlanRef, as_of: datetime | None = None,
                 limit: int | None = None) -> PlanRef:
    """Confirm ``plan_ref``'s removals with ``source``; returns the plan to apply (the diff again with the accounts
    found still there, when there are any) with ``confirmation`` and its notes. ``limit``: at most this many
    removals are asked in this run (None: all of them, as after an approval)."""
    confirmation = Confirmation(rules.source.listing_shifts or "", limit)
    asked: set[int] = set()
    found: list[SourceRecord] = []
    attributes = rules.source_attributes()
    extra = len(parts)  # the found accounts become one more partition of the run
    while True:
        ids = _removal_ids(folder, plan_ref) - asked
        if not ids:
            break
        if limit is not None and len(asked) + len(ids) > limit:
            confirmation.waiting = len(ids)
            log.warning("%d removal(s) to confirm, over safety.max_confirmations (%d): none asked; the run needs an "
                        "approval before they are confirmed", len(ids), limit)
            break
        before = len(found)
        progress = Progress("confirm removals with the source", log, total=len(ids))
        for row in _users(engine, ids):
            one = source.lookup(info, row["ad_username"], row["external_id"])
            confirmation.requests += one.requests
            if one.in_scope and one.record is not None:
                found.append(one.record)
                log.info("still in the source, not removed: %s (user %s)", one.record.account, row["username"])
            else:
                confirmation.gone += 1
            progress.advance()
        progress.done()
        asked |= ids
        if len(found) == before:
            break
        plan_ref = _diff_with(rules, parts, found, attributes, extra, engine, folder, as_of)
    confirmation.asked, confirmation.still_there = len(asked), len(found)
    log.info("confirmation: %s", "; ".join(confirmation.notes()) or "no removals to confirm")
    return _with_notes(folder, {**plan_ref, "confirmation": confirmation.to_json()}, confirmation.notes())


def _removal_ids(folder: RunFolder, plan_ref: PlanRef) -> set[int]:
    return {i for kind in REMOVALS
            for i in folder.read(TableRef.from_json(plan_ref["tables"][kind])).column("id").to_pylist()}


def _users(engine: Engine, ids: set[int]) -> list[dict[str, Any]]:
    """What the users table keeps of each user to remove: how the source can find its account."""
    wanted = sorted(ids)
    columns = (users.c.id, users.c.username, users.c.ad_username, users.c.external_id)
    with engine.connect() as conn:
        return [dict(row) for chunk in range(0, len(wanted), 500)
                for row in conn.execute(select(*columns).where(users.c.id.in_(wanted[chunk:chunk + 500]))
                                        .order_by(users.c.id)).mappings()]


def _diff_with(rules: Rules, parts: list[Mapped], found: list[SourceRecord], attributes: list[str],
               index: int, engine: Engine, folder: RunFolder, as_of: datetime | None) -> PlanRef:
    """The diff again, with the accounts found still there as partition ``index`` (read, then mapped)."""
    ref = folder.write(f"records/part-{index:03d}.parquet", record_batches(found, attributes), records_schema(attributes))
    unique_by = next((a for a in attributes if a.lower() == (rules.source.external_id_attribute or "").lower()), None)
    if unique_by:
        ref = last_state_per_entity(folder, ref, unique_by)
    mapped = map_step(rules, Extracted(partition=index, records=ref.to_json(), delta=False), folder)
    return diff_step(rules, [*parts, mapped], engine, folder, as_of=as_of)


def _with_notes(folder: RunFolder, plan_ref: PlanRef, notes: list[str]) -> PlanRef:
    """The plan with ``notes`` added to its report notes (the notes file rewritten; nothing else read)."""
    if not notes:
        return plan_ref
    ref = TableRef.from_json(plan_ref["tables"]["notes"])
    kept = folder.read(ref).column("note").to_pylist()
    table = pa.table({"note": pa.array([*kept, *notes], pa.string())}, schema=NOTES_SCHEMA)
    written = folder.write(ref.file, table, NOTES_SCHEMA)
    return {**plan_ref, "tables": {**plan_ref["tables"], "notes": written.to_json()}}
