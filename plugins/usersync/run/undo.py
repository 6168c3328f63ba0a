"""The undo step: in place of reading the source and diffing, the inverse of a finished run of this source, planned
from the per-user log (``usersync.plan.undo``) and saved to the run folder like any change set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from usersync.core.errors import UsersyncError
from usersync.core.run_folder import RunFolder
from usersync.core.users_table import users
from usersync.plan.change_tables import PlanRef
from usersync.plan.changes import row_claims
from usersync.plan.tables import record_batches, records_schema
from usersync.plan.undo import REVERSIBLE, Record, plan_undo
from usersync.run.handover import Extracted
from usersync.store.history import changed_since, normal, run_events
from usersync.store.owned import owned_count
from usersync.store.recheck import claim_holders, fingerprint
from usersync.store.schema_version import ensure_schema

log = logging.getLogger(__name__)


class UndoError(UsersyncError, ValueError):
    """The run to undo cannot be undone (unknown, wrote nothing, or pruned from the log); nothing was written."""

    retry_helps = False


def undo_step(source: str, run_id: str, engine: Engine, folder: RunFolder, as_of: datetime | None = None) -> PlanRef:
    """Plan the undo of run ``run_id`` of ``source``; the plan goes to ``plan/`` (the reference is returned)."""
    ensure_schema(engine)
    events = run_events(engine, source, run_id)
    records = [Record(e.action, e.user_id, e.username, {c: (o, n) for c, (o, n) in e.detail.get("changes", {}).items()},
                      e.detail.get("row", {}), e.at)
               for e in events if e.action in REVERSIBLE and e.user_id is not None]
    if not records:
        raise UndoError(f"run {run_id!r} of source {source!r} wrote nothing the per-user log holds (no such run, a dry "
                        "run, a run that changed nothing, or records older than the log's retention); nothing to undo")
    ids = sorted({r.user_id for r in records})
    later = changed_since(engine, ids, after=max(e.id for e in events))
    with engine.connect() as conn:
        seen = fingerprint(conn)
        now_rows = {}
        for i in range(0, len(ids), 5000):
            for row in conn.execute(select(users).where(users.c.id.in_(ids[i:i + 5000]))).mappings():
                now_rows[row["id"]] = {c: normal(c, v) for c, v in row.items()}
        holders = _holders(conn, [r.row for r in records if r.action == "deleted"])
    undo = plan_undo(source, run_id, records, now_rows, {id_: e.run_id for id_, e in later.items()}, holders)
    plan = undo.tables
    plan.seen, plan.owned = seen, owned_count(engine, source)
    plan.as_of = as_of.isoformat() if as_of else None
    log.info("undo of run %s: %s; %d write(s) not undone", run_id, plan.counts(), len(undo.not_undone))
    for line in undo.not_undone:
        log.info("not undone: %s", line)
    ref = plan.save(folder)
    ref["reading"] = f"no source read: the undo of run {run_id}, from the per-user log"
    return ref


def _holders(conn, rows: list[Mapping[str, Any]]) -> dict[str, str]:
    """Who holds each username, sync key and number the deleted users of ``rows`` had (claim → username)."""
    wanted = set().union(*(row_claims(r) for r in rows))
    return {claim: min(found)[1] for claim, found in claim_holders(conn, wanted).items()}


def nothing_read(folder: RunFolder, attributes: list[str]) -> Extracted:
    """The extract of an undo: an empty records file (the undo reads the per-user log, not the source)."""
    ref = folder.write("records/part-000.parquet", record_batches([], attributes), records_schema(attributes))
    return Extracted(partition=0, records=ref.to_json(), delta=False)
