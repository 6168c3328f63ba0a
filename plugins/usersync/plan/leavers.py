"""The leavers' lifecycle: what becomes of a user whose account is gone (deleted, disabled, kept — protected
users held as they are), the grace period a disabled leaver waits out before it is deleted, and the return of
one whose account is back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from usersync.plan.change_tables import LEAVERS_SCHEMA, LIFECYCLE_SCHEMA, ChangeTables
from usersync.plan.frames import frame_table, records
from usersync.plan.tables import TIMESTAMP
from usersync.rules import Rules
from usersync.rules.protect import protection


@dataclass(frozen=True)
class GraceTerm:
    """Where each leaver stands in its grace period (masks and times over the users table's rows)."""

    expired: pd.Series  # disabled earlier and its days are up: deleted now
    waiting: pd.Series  # disabled now or earlier, days still to go
    since: pd.Series  # when it left (now, for one leaving in this run)
    until: pd.Series  # when its days are up


def grace(left_at: pd.Series, going: pd.Series, already: pd.Series, as_of: datetime, days: int) -> GraceTerm:
    """The grace period's arithmetic: a leaver disabled by sync since ``left_at`` is deleted once ``days`` have
    passed (on the day itself); one leaving in this run starts its days now; a missing ``left_at`` counts as
    now, so nobody is deleted for days it was not seen to wait."""
    now = pd.Timestamp(as_of)
    left = left_at.astype(pd.ArrowDtype(TIMESTAMP)).fillna(now)
    earlier = going & already
    expired = earlier & (left + pd.Timedelta(days=days) <= now).fillna(False).astype(bool)
    since = left.where(already, now)
    return GraceTerm(expired=expired, waiting=(going & ~already) | (earlier & ~expired), since=since,
                     until=since + pd.Timedelta(days=days))


def plan_leavers(rules: Rules, existing: pd.DataFrame, gone: pd.Series, as_of: datetime, plan: ChangeTables) -> set:
    """Owned users whose account is gone: deleted, disabled or kept as the deletion policy says — except
    protected users, which are held. With a grace period, a user disabled earlier is deleted once its days are
    up and listed as pending deletion until then."""
    policy, columns = rules.safety.deletion, ["id", "username", "ad_username", "domain"]
    kept_as_is = protected(rules, existing, gone if policy != "keep" else pd.Series(False, index=gone.index))
    plan.holds = lifecycle(existing, kept_as_is, reasons=kept_as_is)
    going = gone & ~existing["id"].isin(list(kept_as_is)).fillna(False).astype(bool) if kept_as_is else gone
    plan.held += len(kept_as_is)
    if policy == "delete":
        plan.deletes = frame_table(existing.loc[going, columns], LEAVERS_SCHEMA)
    elif policy == "disable":
        already = existing["disabled_by_sync"].fillna(False).astype(bool)
        plan.disables = frame_table(existing.loc[going & ~already, columns], LEAVERS_SCHEMA)
        earlier = going & already
        if rules.safety.grace:
            days = rules.safety.delete_after_days
            term = grace(existing["left_at"], going, already, as_of, days)
            plan.deletes = frame_table(existing.loc[term.expired, columns], LEAVERS_SCHEMA)
            if term.expired.any():
                plan.notes.append(f"{int(term.expired.sum())} user(s) deleted: gone {days} day(s) or more "
                                  "(safety.delete_after_days), disabled since")
            plan.pending = lifecycle(existing, term.waiting, left_at=term.since, until=term.until)
            plan.kept = int((earlier & ~term.expired).sum())
        else:
            plan.kept = int(earlier.sum())
    else:
        plan.kept = int(gone.sum())
    return set(plan.deletes.column("id").to_pylist())


def protected(rules: Rules, existing: pd.DataFrame, rows: pd.Series) -> dict[int, str]:
    """Of the users at ``rows``, the protected ones (``protect:`` rules or the ``sync_protected`` column): id → why.
    Read for the few users a run would remove (or update), never for the whole table."""
    at = np.flatnonzero(rows.to_numpy(dtype=bool))
    if not len(at):
        return {}
    if not rules.protect and "sync_protected" in existing:  # the column alone: a vector test
        at = at[existing["sync_protected"].iloc[at].fillna(False).astype(bool).to_numpy()]
    wanted = ["id", *{r.field for r in rules.protect}, "sync_protected"]
    out = {}
    for row in records(existing.iloc[at][[c for c in wanted if c in existing]]):
        why = protection(rules.protect, row)
        if why is not None:
            out[int(row["id"])] = f"protected: {why[0]}"
    return out


def lifecycle(existing: pd.DataFrame, rows: pd.Series | dict[int, str], reasons: dict[int, str] | None = None,
               left_at: pd.Series | None = None, until: pd.Series | None = None) -> pa.Table:
    """Rows of ``existing`` (a mask, or the ids of a dict) as a lifecycle table: who, since when, until when, why."""
    mask = rows if isinstance(rows, pd.Series) else existing["id"].isin(list(rows)).fillna(False).astype(bool)
    picked = existing.loc[mask, ["id", "username", "ad_username", "domain"]].copy()
    if left_at is not None:
        picked["left_at"] = left_at[mask]
    if until is not None:
        picked["until"] = until[mask]
    if reasons:
        picked["reason"] = picked["id"].map(lambda i: reasons.get(int(i)))
    return frame_table(picked, LIFECYCLE_SCHEMA)


def returns(existing: pd.DataFrame, updates: pa.Table, as_of: datetime) -> pa.Table:
    """Users disabled by sync whose account is back (this run re-enables them), with how long they were gone."""
    back = pc.fill_null(pc.equal(updates["old_disabled_by_sync"], True), False)
    if not pc.any(back).as_py():
        return LIFECYCLE_SCHEMA.empty_table()
    rows = updates.filter(back)
    left = {i: t for i, t in zip(rows["id"].to_pylist(), rows["old_left_at"].to_pylist())}
    mask = existing["id"].isin(list(left)).fillna(False).astype(bool)
    days = {i: max(0, (as_of - t).days) if t is not None else None for i, t in left.items()}
    picked = existing.loc[mask, ["id", "username", "ad_username", "domain"]].copy()
    picked["left_at"] = picked["id"].map(lambda i: left.get(int(i)))
    picked["days"] = picked["id"].map(lambda i: days.get(int(i)))
    return frame_table(picked.astype({"days": "Int32"}), LIFECYCLE_SCHEMA)


def fate(rules: Rules, existing: pd.DataFrame, user: int, as_of: datetime) -> dict[str, Any]:
    """What becomes of ``user`` on the first full run that finds its account gone, decided by the very rules a
    run applies (``plan_leavers``): ``deleted``, ``disabled``, ``kept`` (and ``until``, when a grace period
    runs), or ``held`` with the protection's reason."""
    plan = ChangeTables(source=rules.source.name)
    plan_leavers(rules, existing, (existing["id"] == user).fillna(False).astype(bool), as_of, plan)
    out: dict[str, Any] = {"policy": rules.safety.deletion}
    if plan.holds.num_rows:
        out["held"] = plan.holds.column("reason")[0].as_py()
    elif plan.deletes.num_rows:
        out["deleted"] = True
    elif plan.disables.num_rows:
        out["disabled"] = True
    else:
        out["kept"] = True
    if plan.pending.num_rows:
        out["until"] = plan.pending.column("until")[0].as_py().isoformat()
    return out
