"""The change guard: harm the mass-delete guard does not count stops a run for approval before anything is written.

A wrong search scope, a renamed attribute or an export cut in half shows as a read that shrank or as one field
changed or cleared on many users, not only as removals. The guard compares a full read with the source's last
applied full read (naming where the accounts went missing: the OU for a directory, else the domain) and counts,
per field, the users whose value the plan changes and clears, against ``safety``'s limits. An approval, or the
``allow_mass_change`` trigger parameter, lifts it for one run — the same approval as the mass-delete guard's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from usersync.core.errors import Blocked
from usersync.plan.guard import Guard
from usersync.rules.model import FieldLimit, SafetySpec

#: places a read's breakdown keeps (the largest); the rest are counted under one line
PLACES = 200
#: places and sample changes a verdict names
SHOWN = 10


class UnsafeChange(Blocked, RuntimeError):
    """The read or the plan exceeds the change guard's limits; nothing was written."""


CHANGES = Guard("change guard", "allow_mass_change", UnsafeChange)


def place_of(account: str | None, domain: str | None) -> str:
    """Where an account sits in its source: the parent of a directory DN (``OU=Sales,DC=corp``), else its domain."""
    if account and "=" in account.split(",", 1)[0] and "," in account:
        return account.split(",", 1)[1].strip().lower()
    return domain or "(no domain)"


def places(accounts: Iterable[str | None], domains: Iterable[str | None]) -> dict[str, int]:
    """Accounts per place, the ``PLACES`` largest (the rest under ``(elsewhere)``)."""
    counted = Counter(place_of(a, d) for a, d in zip(accounts, domains, strict=True))
    kept = dict(counted.most_common(PLACES))
    rest = sum(counted.values()) - sum(kept.values())
    return {**kept, "(elsewhere)": rest} if rest else kept


@dataclass(frozen=True)
class LastRead:
    """What is kept of a source's last applied full read."""

    count: int
    at: str | None = None
    run_id: str | None = None
    where: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadDrop:
    """A full read against the last applied one: how many fewer accounts, and the places that lost most."""

    before: int
    now: int
    percent: float
    limit: float
    since: str | None  # when the last applied full read ran
    where: list[tuple[str, int, int]]  # (place, accounts before, now), largest drop first
    removals: int = 0  # of the missing accounts, the users the plan removes: the mass-delete guard counts those

    @property
    def unseen(self) -> int:
        """Missing accounts no removal stands for (deletion keep, a grace period, accounts no user has)."""
        return max(0, self.before - self.now - self.removals)

    @property
    def over(self) -> bool:
        return 100.0 * self.unseen / self.before > self.limit

    def line(self) -> str:
        removed = f", {self.removals} of them planned removals the mass-delete guard counts" if self.removals else ""
        head = (f"the read returned {self.now} accounts, {self.before - self.now} ({self.percent:.1f}%) fewer than "
                f"the {self.before} of the last applied full read" + (f" ({self.since})" if self.since else "") +
                f"{removed}; limit {self.limit:g}%")
        if not self.where:
            return head
        return head + "; the drop is in " + ", ".join(f"{p} ({b} → {n})" for p, b, n in self.where)


def read_drop(now: int, where: Mapping[str, int], last: LastRead | None, limits: SafetySpec,
              removals: int = 0) -> ReadDrop | None:
    """The drop of a full read against the last applied one; None with nothing to compare, no drop, the guard
    off, or fewer than ``guard_min_users`` missing accounts beyond the plan's ``removals`` (which the mass-delete
    guard judges: one drop is not asked about twice)."""
    if last is None or limits.max_read_drop_percent is None or now >= last.count or not last.count:
        return None
    if last.count - now - removals < limits.guard_min_users:
        return None
    lost = sorted(((p, b, where.get(p, 0)) for p, b in last.where.items() if where.get(p, 0) < b),
                  key=lambda t: t[2] - t[1])
    return ReadDrop(before=last.count, now=now, percent=100.0 * (last.count - now) / last.count,
                    limit=limits.max_read_drop_percent, since=last.at, where=lost[:SHOWN], removals=removals)


@dataclass(frozen=True)
class FieldShift:
    """One field over its limit: how many of the source's users the plan changes and clears it for."""

    field: str
    changed: int
    cleared: int
    owned: int
    limit: FieldLimit
    samples: list[str]  # ``jdoe: Sales → (empty)``

    def over(self) -> list[str]:
        """What of this field is over its limits, in words (empty: within them)."""
        out = []
        for count, what, limit in ((self.changed, "changed", self.limit.max_changed_percent),
                                   (self.cleared, "cleared", self.limit.max_cleared_percent)):
            if limit is not None and self.owned and 100.0 * count / self.owned > limit:
                out.append(f"{self.field} {what} for {count} of the {self.owned} users "
                           f"({100.0 * count / self.owned:.1f}%; limit {limit:g}%)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "limit": self.limit.model_dump()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldShift:
        return cls(**{**data, "limit": FieldLimit(**data["limit"])})


def _text(value: Any) -> str:
    return "(empty)" if value is None or value == "" else str(value)


def field_shifts(updates: pa.Table, owned: int, limits: Mapping[str, FieldLimit], min_users: int) -> list[FieldShift]:
    """The fields a plan's updates change or clear on more users than their limits allow (``updates``: the change
    set's updates table, ``old_<f>`` / ``new_<f>`` per field)."""
    out = []
    for name, limit in limits.items():
        if f"old_{name}" not in updates.column_names:
            continue
        old, new = updates.column(f"old_{name}"), updates.column(f"new_{name}")
        differs = pc.fill_null(pc.not_equal(old, new), False)
        changed_mask = pc.or_(differs, pc.xor(pc.is_null(old), pc.is_null(new)))
        cleared_mask = pc.and_(pc.is_valid(old), pc.is_null(new))
        changed, cleared = pc.sum(changed_mask).as_py() or 0, pc.sum(cleared_mask).as_py() or 0
        if max(changed, cleared) < min_users:
            continue
        shift = FieldShift(name, changed, cleared, owned, limit, [])
        if not shift.over():
            continue
        rows = updates.filter(changed_mask).slice(0, SHOWN).select(["username", f"old_{name}", f"new_{name}"])
        samples = [f"{r['username']}: {_text(r[f'old_{name}'])} → {_text(r[f'new_{name}'])}" for r in rows.to_pylist()]
        out.append(FieldShift(name, changed, cleared, owned, limit, samples))
    return out


@dataclass(frozen=True)
class ChangeVerdict:
    """The change guard's verdict on a run (``usersync.plan.guard.GuardVerdict``)."""

    drop: ReadDrop | None
    fields: list[FieldShift]
    blocked: bool
    allowed_by_override: bool
    approved_by: str | None = None
    overridden_by: str | None = None

    @property
    def over(self) -> list[str]:
        """Each limit the run is over, in words."""
        return ([self.drop.line()] if self.drop and self.drop.over else []) + \
            [line for f in self.fields for line in f.over()]

    @property
    def message(self) -> str:
        if not self.over:
            return "change guard passed: the read and the changes per field are within safety's limits"
        what = "; ".join(self.over)
        if self.blocked:
            return (f"BLOCKED by the change guard: {what}. Nothing was written. If this is intended, approve the run "
                    "in Airflow's Required Actions (when approvals are on) or trigger the DAG once with the "
                    "parameter allow_mass_change = true; the next run is guarded again.")
        if self.approved_by:
            return f"change guard lifted for this run, approved by {self.approved_by}: {what}"
        return f"change guard overridden for this run (allow_mass_change, set by {self.overridden_by}): {what}"

    def detail(self) -> list[str]:
        """The breakdown an approval and a report show: places of the drop, sample changes per field."""
        out = []
        if self.drop and self.drop.over:
            out += [f"{p}: {b} → {n} accounts" for p, b, n in self.drop.where]
        for f in self.fields:
            out += [f"{f.field} — {s}" for s in f.samples]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"drop": asdict(self.drop) if self.drop else None, "fields": [f.to_json() for f in self.fields],
                "blocked": self.blocked, "allowed_by_override": self.allowed_by_override,
                "approved_by": self.approved_by, "overridden_by": self.overridden_by, "message": self.message,
                "over": self.over, "detail": self.detail()}


def shifts_to_json(drop: ReadDrop | None, fields: list[FieldShift]) -> dict[str, Any]:
    """What the diff found, for the plan's reference (the guard judges it with the run's overrides)."""
    return {"drop": asdict(drop) if drop else None, "fields": [f.to_json() for f in fields]}


def check_changes(found: dict[str, Any] | None, allow: bool = False, approved_by: str | None = None,
                  overridden_by: str | None = None) -> ChangeVerdict:
    """The guard on what the diff found (``shifts_to_json``); an approval lifts it like ``allow_mass_change``."""
    found = found or {}
    raw = found.get("drop")
    drop = ReadDrop(**{**raw, "where": [tuple(w) for w in raw["where"]]}) if raw else None
    fields = [FieldShift.from_json(f) for f in found.get("fields", [])]
    over = bool((drop and drop.over) or any(f.over() for f in fields))
    allow = allow or approved_by is not None
    return ChangeVerdict(drop=drop, fields=fields, blocked=over and not allow, allowed_by_override=over and allow,
                         approved_by=approved_by if over else None,
                         overridden_by=overridden_by if over and allow and approved_by is None else None)
