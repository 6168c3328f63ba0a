"""Cases kept between runs: opened, refreshed and closed by apply in the run's transaction, decided by admins.

A case is live until it is closed (``closed_at`` set); one live case per (source, key). Its status says who
acts next: ``open`` (a person), ``decided`` (the next run applies the decision), ``kept`` (the holder keeps the
number; the case closes by itself when the clash is gone), ``rejected`` (a rejected match that cannot be a new
user either: the account stays skipped). Each decision raises ``version``; a run closes a case only with the
version it read, so a decision taken while a run applies is applied by the next run, never half.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, func, insert, or_, select, update

from usersync.core.users_table import cases, users
from usersync.plan.cases import (
    CLOSED,
    CONFIRM,
    DECIDED,
    DECISIONS,
    GIVE,
    KEEP,
    KEPT,
    MATCH,
    NUMBER,
    OPEN,
    REJECT,
    REJECTED,
    Decision,
)
from usersync.store.recheck import Conflict
from usersync.store.user_log import UPDATED, RunStamp, UserLog

#: a decision this run planned from, changed since (``hold_back_stale``): not applied, not closed
STALE = "stale"
LIVE = (OPEN, DECIDED, KEPT, REJECTED)
#: how a case the run no longer finds ended (only a run that read the whole source can say so)
RESOLVED = {NUMBER: "resolved: no other user holds the number any more (the claimant has it, or no longer "
                    "claims it)",
            MATCH: "resolved: the account no longer needs a decision (matched by its key, or gone from the source)"}
#: what a case shows and compares: a change of any of these is a change worth announcing again
CONTENT = ("account", "username", "ad_username", "domain", "external_id", "field", "value", "holder_id", "holder",
           "detail")


class CaseError(ValueError):
    """A decision that cannot be taken (unknown case, wrong kind, no such user): nothing was written."""


def live_decisions(engine: Engine, source: str) -> dict[str, Decision]:
    """The live cases of ``source`` by key, as the diff reads them (what was decided, at which version)."""
    query = select(cases.c.id, cases.c.key, cases.c.version, cases.c.status, cases.c.decision, cases.c.user_id,
                   cases.c.holder_id, cases.c.field, cases.c.value, cases.c.kind) \
        .where(cases.c.source == source, cases.c.closed_at.is_(None))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {r["key"]: Decision(int(r["id"]), int(r["version"]), r["status"],
                               r["decision"] if r["status"] == DECIDED or r["decision"] in (REJECT, KEEP) else None,
                               r["holder_id"] if r["kind"] == NUMBER else r["user_id"], r["field"], r["value"])
            for r in rows}


@dataclass
class CaseCounts:
    opened: int = 0
    changed: int = 0
    applied: int = 0
    closed: int = 0

    def to_json(self) -> dict[str, int]:
        return {f"cases_{k}": v for k, v in self.__dict__.items() if v}


def record(conn: Connection, source: str, found: pa.Table, decided: pa.Table, stamp: RunStamp, now: datetime,
           not_applied: set[int]) -> CaseCounts:
    """Apply's part: the decisions this run applied (``decided``: closed, reopened or kept as rejected, each only
    at the version the run read; not when its user's change was left out, ``not_applied``), the cases it found
    (``found``: opened, or refreshed and marked changed when what they show changed), and — after a full read —
    the live cases it no longer found, closed as resolved."""
    counts = CaseCounts()
    live = {r["key"]: dict(r) for r in conn.execute(select(cases).where(
        cases.c.source == source, cases.c.closed_at.is_(None))).mappings()}
    by_id = {r["id"]: r for r in live.values()}
    touched: set[int] = set()
    groups: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # reopened (decision cleared) or not
    for row in decided.to_pylist():
        touched.add(row["case_id"])
        if row["status"] == STALE:
            continue  # decided again during the run: the next run applies the new decision
        if row["status"] == CLOSED and row["user_id"] is not None and row["user_id"] in not_applied:
            continue  # its change was left out (the table changed during the run): the next run applies it
        closing = row["status"] == CLOSED
        groups[row["status"] == OPEN].append({
            "_id": row["case_id"], "_version": row["version"], "status": row["status"], "outcome": row["outcome"],
            "closed_at": now if closing else None, "closed_run_id": stamp.run_id if closing else None})
    for reopened, params in groups.items():
        if params:  # each only at the version the run read
            conn.execute(update(cases).where(cases.c.id == bindparam("_id"), cases.c.version == bindparam("_version"),
                                             cases.c.closed_at.is_(None))
                         .values(last_at=now, last_run_id=stamp.run_id, **({"decision": None} if reopened else {}),
                                 **{c: bindparam(c) for c in ("status", "outcome", "closed_at", "closed_run_id")}),
                         params)
    closing_ids = [p["_id"] for p in groups[False] if p["closed_at"] is not None]
    if closing_ids:
        closed = set(conn.execute(select(cases.c.id).where(cases.c.id.in_(closing_ids),
                                                           cases.c.closed_run_id == stamp.run_id)).scalars())
        counts.applied = len(closed)
        for case_id in closed & set(by_id):
            live.pop(by_id[case_id]["key"], None)

    fresh, refreshed = [], []
    for row in found.to_pylist():
        old = live.get(row["key"])
        if old is None:
            fresh.append({**{c: row[c] for c in CONTENT}, "source": source, "kind": row["kind"], "key": row["key"],
                          "status": OPEN, "version": 0, "opened_at": now, "opened_run_id": stamp.run_id,
                          "last_at": now, "last_run_id": stamp.run_id, "seen": 1})
            continue
        touched.add(old["id"])
        changed = any(old[c] != row[c] for c in CONTENT)
        counts.changed += changed
        refreshed.append({"_id": old["id"], "_seen": old["seen"] + 1, "last_at": now, "last_run_id": stamp.run_id,
                          "changed_at": now if changed else old["changed_at"], **{c: row[c] for c in CONTENT}})
    if fresh:
        conn.execute(insert(cases), fresh)
        counts.opened = len(fresh)
    if refreshed:
        conn.execute(update(cases).where(cases.c.id == bindparam("_id")).values(
            seen=bindparam("_seen"), **{c: bindparam(c) for c in ("last_at", "last_run_id", "changed_at", *CONTENT)}),
            refreshed)
    if stamp.full_read:
        gone = [r for r in live.values() if r["id"] not in touched]
        for kind in (NUMBER, MATCH):
            ids = [r["id"] for r in gone if r["kind"] == kind]
            if ids:
                counts.closed += conn.execute(update(cases).where(cases.c.id.in_(ids)).values(
                    status=CLOSED, outcome=RESOLVED[kind], closed_at=now, closed_run_id=stamp.run_id)).rowcount
    return counts


def take_numbers(conn: Connection, takes: pa.Table, user_log: UserLog, now: datetime) -> list[int]:
    """``give`` decisions: clear each number on its holder while the holder still has it (logged as the holder's
    update, naming the case). Returns the cases whose holder no longer had the number."""
    missed = []
    for row in takes.to_pylist():
        column = users.c[row["field"]]
        done = conn.execute(update(users).where(users.c.id == row["id"], column == row["value"])
                            .values({row["field"]: None, "updated_at": now})).rowcount
        if not done:
            missed.append(row["case_id"])
            continue
        holder = dict(conn.execute(select(users).where(users.c.id == row["id"])).mappings().one())
        user_log.changed(UPDATED, holder, {row["field"]: (row["value"], None)},
                         reason=f"case {row['case_id']}: {row['field']} {row['value']} given to another user")
    return missed


def decide(engine: Engine, ids: Iterable[int], decision: str, by: str, sources: Iterable[str],
           user_id: int | None = None, now: datetime | None = None) -> dict[int, str]:
    """Record one decision on many cases, in one transaction: id → "ok" or why that case was refused.

    Only live cases of ``sources`` (those the deciding person may trigger) are decided. ``confirm`` links the
    account to ``user_id``, or to the case's only candidate; ``give``, ``confirm`` and ``reject`` wait for the
    next run (status ``decided``); ``keep`` takes effect at once (the holder keeps the number, the case stays
    quiet until the clash is gone)."""
    now = now or datetime.now(UTC)
    ids = sorted({int(i) for i in ids})
    allowed = set(sources)
    out: dict[int, str] = {}
    with engine.begin() as conn:
        rows = {r["id"]: dict(r) for r in conn.execute(select(cases).where(cases.c.id.in_(ids))).mappings()}
        chosen = _chosen(conn, [r for r in rows.values() if r["kind"] == MATCH], decision, user_id)
        writes = []
        for case_id in ids:
            row = rows.get(case_id)
            if row is None or row["source"] not in allowed:
                out[case_id] = "no such case (or not yours to decide)"
            elif row["closed_at"] is not None:
                out[case_id] = f"already closed ({row['outcome']})"
            elif decision not in DECISIONS[row["kind"]]:
                out[case_id] = f"a {row['kind']} case is decided by {' or '.join(DECISIONS[row['kind']])}, not {decision!r}"
            elif decision == GIVE and row["holder_id"] is None:
                out[case_id] = "the holder is another account of the same run: change the number in the source instead"
            elif isinstance(chosen.get(case_id), str):
                out[case_id] = str(chosen[case_id])
            else:
                writes.append({"_id": case_id, "_version": row["version"], "user_id": chosen.get(case_id),
                               "version": row["version"] + 1})
        if writes:  # as read: a run applying one of them meanwhile holds it locked, and this waits for it
            conn.execute(update(cases).where(cases.c.id == bindparam("_id"), cases.c.version == bindparam("_version"),
                                             cases.c.closed_at.is_(None))
                         .values(decision=decision, status=KEPT if decision == KEEP else DECIDED, decided_by=by,
                                 decided_at=now, outcome=None, user_id=bindparam("user_id"),
                                 version=bindparam("version")), writes)
            now_at = dict(conn.execute(select(cases.c.id, cases.c.version).where(
                cases.c.id.in_([w["_id"] for w in writes]))).all())
            for w in writes:
                out[w["_id"]] = "ok" if now_at.get(w["_id"]) == w["version"] else \
                    "changed meanwhile (a run applied it, or someone decided it): reload"
    return out


def _chosen(conn: Connection, rows: list[dict[str, Any]], decision: str,
            user_id: int | None) -> dict[int, int | str]:
    """For a confirm, per match case the user it links to (``user_id``, or the case's only candidate), checked
    to be a local user — or why not (text). One query for all of them."""
    if decision != CONFIRM:
        return {}
    wanted: dict[int, int | str] = {}
    for row in rows:
        candidates = [c["id"] for c in json.loads(row["detail"] or "{}").get("candidates", [])]
        if user_id is not None:
            wanted[row["id"]] = int(user_id)
        elif len(candidates) == 1:
            wanted[row["id"]] = int(candidates[0])
        else:
            wanted[row["id"]] = f"{len(candidates)} candidates: choose the user to link to"
    ids = sorted({u for u in wanted.values() if isinstance(u, int)})
    found = {r["id"]: r for r in conn.execute(select(users.c.id, users.c.ad_username, users.c.domain, users.c.source)
                                               .where(users.c.id.in_(ids))).mappings()}
    for case_id, user in list(wanted.items()):
        if isinstance(user, str):
            continue
        if user not in found:
            wanted[case_id] = f"no user with id {user}"
        elif found[user]["source"] or found[user]["ad_username"] or found[user]["domain"]:
            wanted[case_id] = f"user {user} is not a local user (it has an AD username, Domain or owner)"
    return wanted


def list_cases(engine: Engine, sources: Iterable[str], status: str = "live", kind: str | None = None,
               search: str = "", limit: int = 500, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Cases of ``sources``, newest first: (one page, how many match in all). ``status``: live, closed or all (or
    one status); ``search`` finds the account, username, value or holder."""
    where: list[ColumnElement[bool]] = [cases.c.source.in_(list(sources))]
    if status == "live":
        where.append(cases.c.closed_at.is_(None))
    elif status == CLOSED:
        where.append(cases.c.closed_at.is_not(None))
    elif status != "all":
        where.append(cases.c.status == status)
    if kind:
        where.append(cases.c.kind == kind)
    if search.strip():
        like = f"%{search.strip().lower()}%"
        where.append(or_(*[func.lower(cases.c[c]).like(like) for c in ("account", "username", "value", "holder",
                                                                       "ad_username")]))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(cases).where(and_(*where))).scalar_one()
        rows = conn.execute(select(cases).where(and_(*where)).order_by(cases.c.id.desc())
                            .limit(limit).offset(offset)).mappings().all()
    return [shown(dict(r)) for r in rows], int(total)


def waiting_counts(engine: Engine, sources: Iterable[str]) -> dict[str, int]:
    """Cases waiting for a person (``open``) per source: one query (the sources page's column)."""
    with engine.connect() as conn:
        rows = conn.execute(select(cases.c.source, func.count()).where(
            cases.c.source.in_(list(sources)), cases.c.status == OPEN, cases.c.closed_at.is_(None))
            .group_by(cases.c.source)).all()
    return {source: int(n) for source, n in rows}


def shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """A case as pages and the API show it (times as ISO 8601, the detail unpacked)."""
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "detail"}
    out["detail"] = json.loads(row["detail"]) if row["detail"] else {}
    return out


def unannounced(engine: Engine, source: str) -> list[dict[str, Any]]:
    """Open cases no report has announced yet, or that changed since the last announcement."""
    query = select(cases).where(cases.c.source == source, cases.c.status == OPEN, cases.c.closed_at.is_(None),
                                or_(cases.c.announced_at.is_(None), cases.c.changed_at > cases.c.announced_at)) \
        .order_by(cases.c.id)
    with engine.connect() as conn:
        return [shown(dict(r)) for r in conn.execute(query).mappings()]


def announce(engine: Engine, ids: list[int], now: datetime | None = None) -> None:
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.id.in_(ids)).values(announced_at=now or datetime.now(UTC)))


def summary(engine: Engine, source: str) -> dict[str, int]:
    """Live cases of ``source`` per status (what the reports page and the report show)."""
    query = select(cases.c.status, func.count()).where(cases.c.source == source, cases.c.closed_at.is_(None)) \
        .group_by(cases.c.status)
    with engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(query)}


def hold_back_stale(conn: Connection, plan: Any) -> list[Conflict]:
    """Decisions changed since the diff read them (a person decided again while the run was under way): the
    changes the run planned from the old decision are left out, to be planned from the new one by the next run
    — a decision is applied whole or not at all. The cases are locked until the run's transaction ends, so a
    decision cannot change between this check and the commit."""
    if not plan.decided.num_rows:
        return []
    planned = {r["case_id"]: r for r in plan.decided.to_pylist()}
    now_rows = {r["id"]: r for r in conn.execute(select(cases).where(cases.c.id.in_(list(planned))).with_for_update())
                .mappings()}
    stale = [now_rows.get(i) or {"id": i} for i, r in planned.items()
             if i not in now_rows or now_rows[i]["version"] != r["version"] or now_rows[i]["closed_at"] is not None]
    if not stale:
        return []
    ids = pa.array([r["id"] for r in stale], pa.int64())
    is_stale = pc.is_in(plan.decided["case_id"], value_set=ids)  # kept as seen, so a full read does not close it
    plan.decided = plan.decided.set_column(plan.decided.schema.get_field_index("status"), "status",
                                           pc.if_else(is_stale, STALE, plan.decided["status"]))
    plan.takes = plan.takes.filter(pc.invert(pc.is_in(plan.takes["case_id"], value_set=ids)))
    users_of = [planned[r["id"]]["user_id"] for r in stale  # a confirm's link: the update of the user it chose
                if planned[r["id"]]["user_id"] is not None and r.get("kind", MATCH) == MATCH]
    if users_of:
        plan.updates = plan.updates.filter(pc.invert(pc.is_in(plan.updates["id"], value_set=pa.array(users_of, pa.int64()))))
    keys = {(str(r.get("ad_username") or "").casefold(), str(r.get("domain") or "").casefold()) for r in stale}
    values = {(r.get("field"), r.get("value")) for r in stale if r.get("kind") == NUMBER}
    for f, v in values:  # a number a stale ``give`` would have handed over: the claimant's update waits too
        plan.updates = plan.updates.filter(pc.fill_null(pc.not_equal(plan.updates[f"new_{f}"], v), True))
    if plan.inserts.num_rows:
        keep = [(str(a or "").casefold(), str(d or "").casefold()) not in keys
                and not any(row.get(f) == v for f, v in values)
                for a, d, row in zip(plan.inserts["ad_username"].to_pylist(), plan.inserts["domain"].to_pylist(),
                                     plan.inserts.to_pylist())]
        plan.inserts = plan.inserts.filter(pa.array(keep, pa.bool_()))
    return [Conflict(r.get("username"), f"case {r['id']}: decided again during this run; the next run applies the "
                                        "new decision", kind="claim") for r in stale]
