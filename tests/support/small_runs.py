"""The typed steps on small, in-memory inputs: what tests and the domain benchmark drive directly.

A real run goes through files (``usersync.run.pipeline``); these wrap the same code for row objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine

from usersync.plan.cases import Decision
from usersync.plan.change_tables import ChangeTables
from usersync.plan.changes import ChangeSet, Skipped
from usersync.plan.diff import diff_frames
from usersync.plan.mapping import MappedUser
from usersync.plan.safety import Verdict, check_removals
from usersync.plan.tables import mapped_batch, rows_frame, to_frame, value_fields_of
from usersync.rules import Rules
from usersync.rules.model import SafetySpec
from usersync.store.apply import apply_tables


def compute_diff(rules: Rules, mapped: Iterable[MappedUser], existing: Iterable[Mapping[str, Any]],
                 skipped: Iterable[Skipped] = (), read: int = 0, removed: set[str] | None = None) -> ChangeSet:
    """The typed change set: the columnar diff over row objects."""
    return plan_tables(rules, mapped, skipped, existing, read, removed).to_changeset()


def plan_tables(rules: Rules, mapped: Iterable[MappedUser], skipped: Iterable[Skipped] = (),
                existing: Iterable[Mapping[str, Any]] = (), read: int = 0, removed: set[str] | None = None,
                decisions: Mapping[str, Decision] | None = None) -> ChangeTables:
    """The whole plan (cases, decisions and takes too) of the columnar diff over row objects."""
    mapped_frame = to_frame(pa.Table.from_batches([mapped_batch(list(mapped), value_fields_of(rules))]))
    return diff_frames(rules, mapped_frame, rows_frame(existing), list(skipped), read, removed, decisions=decisions)


def apply_changes(engine: Engine, plan: ChangeSet, now: datetime | None = None) -> dict[str, int]:
    """Apply a typed ``ChangeSet`` atomically; returns the rows written per operation."""
    return apply_tables(engine, ChangeTables.from_changeset(plan), now)


def check_plan(plan: ChangeSet, limits: SafetySpec, allow_mass_delete: bool = False) -> Verdict:
    return check_removals(plan.removals, plan.owned, limits, allow_mass_delete)
