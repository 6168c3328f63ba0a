"""Keeping named users as local users, outside a sync run: find them, detach each owning source's users in one
transaction (a change set of detaches, applied like any other), and report it as a run of that source — what the
command line (``usersync-db detach``) and any other front end call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from usersync.run.report import Conflicts, RunReport
from usersync.store.apply import apply_tables
from usersync.store.detach import detach_plan, find_synced


@dataclass
class Detached:
    """What a detach did: the users detached per source, names of users already local, names that found
    nobody (then nothing was written)."""

    by_source: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    local: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def detach_users(engine: Engine, names: Iterable[str], asked_by: str, source: str | None = None,
                 reported: Callable[[str, RunReport], None] | None = None) -> Detached:
    """Detach the users ``names`` name (``store.detach.find_synced``; only ``source``'s, when given). Writes
    nothing when a name finds nobody; else one transaction per owning source, each reported to ``reported``."""
    found = find_synced(engine, names, source)
    if found.unknown:
        return Detached(local=found.local, unknown=found.unknown)
    for owner, rows in found.by_source.items():
        plan = detach_plan(owner, rows, f"kept as a local user: usersync-db detach, asked by {asked_by}")
        started = datetime.now(UTC)
        written = apply_tables(engine, plan)
        if reported is not None:
            reported(owner, RunReport(
                source=owner, run_id=f"detach__{started:%Y%m%dT%H%M%S%fZ}", dry_run=False, started=started,
                ended=datetime.now(UTC), plan=plan.to_changeset(),
                sections=[Conflicts([f"{c.username}: {c.reason}" for c in plan.conflicts], len(plan.conflicts))],
                warnings=[] if written.get("detached") else ["nothing was detached"]))
    return Detached(by_source=found.by_source, local=found.local)
