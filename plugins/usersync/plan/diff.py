"""Mapped source users + current users table → the change set, computed in columns (pandas over Arrow).

Matching is on (AD username, Domain), case-insensitively. The diff is where the table's business rules are
kept: local users (blank key) are never touched unless a ``match:`` rule or an admin's decision links one, a
source only updates or deletes users it owns, usernames and phone numbers stay unique (a number another user
holds is held aside as a case, or — ``on_clash: skip`` — the account is skipped; nobody else is affected — see
``claims``), and an account that exists in the source — even one skipped for bad data — is never deleted.

The work is a key lookup (Arrow ``index_in``) and column comparisons, read one column at a time, so a run with
nothing changed costs a few vector operations whatever the directory size, and Python objects are made only for
what changes (figures at 100,000 and 1,000,000 users: docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from usersync.plan import claims, leavers
from usersync.plan.cases import (
    CASES_SCHEMA,
    CLOSED,
    DECIDED_SCHEMA,
    GIVE,
    NUMBER,
    OPEN,
    REJECTED,
    TAKES_SCHEMA,
    Decision,
    claimant,
    number_key,
)
from usersync.plan.change_tables import INSERTS_SCHEMA, UPDATES_SCHEMA, ChangeTables
from usersync.plan.changes import KEY_SEP, SkipCode, Skipped, match_key
from usersync.plan.correlate import Correlation, correlate
from usersync.plan.frames import casefold, frame_table, records
from usersync.plan.tables import SKIPPED_SCHEMA, TIMESTAMP, value_fields_of
from usersync.rules import Rules
from usersync.rules.fields import BOOL_FIELDS, FIELDS, NUMBER_FIELDS, Policy
from usersync.rules.protect import protection

Row = Mapping[str, Any]
#: the account a single-account run asks about: (AD username, Domain, anchor, read) — ``read`` False when the
#: source does not hold it, and key and anchor are only the name the admin gave
Identity = tuple[str | None, str | None, str | None, bool]


def _blank(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.isna()
    return (s.isna() | (s == "")).fillna(True).astype(bool)


def _same(old: pd.Series, new: pd.Series) -> pd.Series:
    both_blank = _blank(old) & _blank(new)
    return both_blank | (old == new).fillna(False).astype(bool)


def _differs(old: pd.Series, new: pd.Series) -> pd.Series:
    """``old != new`` where a null differs from every value (Python's ``None != 'x'``)."""
    return ~((old == new).fillna(False).astype(bool) | (old.isna() & new.isna()))


def _keys(ad_username: pd.Series, domain: pd.Series) -> pd.Series:
    return casefold(ad_username.str.strip()) + KEY_SEP + casefold(domain.str.strip())


def _gone(existing_keys: pd.Series, existing_anchors: pd.Series, owned: pd.Series, matched: np.ndarray,
          present_keys: pd.Series, present_anchors: pd.Series, protected_keys: pd.Series,
          removed: set[str] | None, disabled_before: pd.Series) -> pd.Series:
    """Which owned users' accounts are no longer in the source.

    With an anchor, identity is the anchor: a user whose anchor the source no longer holds is gone, even if
    another account now has its name (re-created) — unless an account the run could not match (skipped,
    duplicate, held) still has its key. Without one, the key decides. A delta read (``removed``: the anchors
    deleted or moved out of scope since the watermark) sees only what changed: nothing else is newly gone, but
    a user disabled by sync earlier (``disabled_before``) stays gone unless the read brought its account back.
    """
    anchored = existing_anchors.notna()
    kept_by_key = existing_keys.isin(protected_keys).fillna(False).astype(bool)
    by_anchor = ~existing_anchors.isin(present_anchors).fillna(False).astype(bool) & ~kept_by_key
    by_key = ~existing_keys.isin(present_keys).fillna(False).astype(bool)
    absent = by_key.where(~anchored, by_anchor)
    if removed is not None:
        gone = anchored & existing_anchors.isin(list(removed)).fillna(False).astype(bool) & by_anchor
        gone |= absent & disabled_before
    else:
        gone = absent
    not_matched = np.ones(len(existing_keys), bool)
    not_matched[matched[matched >= 0]] = False
    return (gone & owned).astype(bool) & not_matched


def _duplicates(mapped: pd.DataFrame, keys: pd.Series, anchors: pd.Series) -> tuple[pd.Series, list[Skipped]]:
    """Accounts sharing one key, or one anchor: all copies are skipped (which one is right cannot be known)."""
    dup = keys.duplicated(keep=False)
    anchor_dup = anchors.notna() & anchors.duplicated(keep=False) & ~dup
    out: list[Skipped] = []
    for mask, group_by, what in ((dup, keys, "key"), (anchor_dup, anchors, "anchor")):
        if not mask.any():
            continue
        rows = mapped[mask].assign(_group=group_by[mask]).sort_values("_group", kind="stable")
        for _group, group in rows.groupby("_group", sort=True):
            accounts = ", ".join(group["account"])
            out += [Skipped(a, (f"duplicate key {d}\\{u}" if what == "key" else f"duplicate anchor {x}")
                            + f" in the source ({accounts})", u, d, x,
                            SkipCode.DUPLICATE_KEY if what == "key" else SkipCode.DUPLICATE_ANCHOR)
                    for a, u, d, x in zip(*map(_py, (group["account"], group["ad_username"], group["domain"],
                                                     group["external_id"])))]
    return dup | anchor_dup.fillna(False).astype(bool), out


def _py(values: pd.Series) -> np.ndarray:
    """Python objects, nulls as None (for the few rows that become ``Skipped`` entries)."""
    return values.to_numpy(dtype=object, na_value=None)


def _anchors(values: pd.Series) -> pd.Series:
    """Anchors as compared: trimmed, case-insensitive (GUIDs are hex), blank as null."""
    folded = casefold(values.str.strip())
    return folded.where(~_blank(folded))


class _Rows:
    """Some rows of a frame, read one column at a time (no copy of the whole frame, whatever its width)."""

    def __init__(self, frame: pd.DataFrame, rows: np.ndarray):
        self.frame, self.rows = frame, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __call__(self, column: str) -> pd.Series:
        return self.frame[column].iloc[self.rows].reset_index(drop=True)

    def subset(self, mask: np.ndarray) -> _Rows:
        return _Rows(self.frame, self.rows[mask])


def _update_columns(rules: Rules, old: _Rows, new: _Rows, value_fields: list[str]) -> dict[str, tuple[pd.Series, pd.Series, pd.Series]]:
    """Per column the rules may write on a matched user: (changed?, old, new)."""
    out: dict[str, tuple[pd.Series, pd.Series, pd.Series]] = {}
    for field in value_fields:
        policy = rules.fields[field].policy
        before, after = old(field), new(field)
        if policy in (Policy.IMPORT, Policy.PREFIX):
            out[field] = (~_same(before, after), before, after)
        elif policy is Policy.DEFAULT_IF_EMPTY:
            out[field] = (_blank(before) & ~_blank(after), before, after)
    source = pd.Series(rules.source.name, index=pd.RangeIndex(len(new)), dtype=pd.ArrowDtype(pa.string()))
    for column, after in (("ad_username", new("ad_username")), ("domain", new("domain")), ("source", source)):
        before = old(column)
        out[column] = (_differs(before, after), before, after)  # case-only renames too
    before, after = old("external_id"), new("external_id")
    out["external_id"] = (~_blank(after) & _differs(before, after), before, after)
    # the account is back: undo what deletion policy 'disable' did
    back = old("disabled_by_sync").fillna(False).astype(bool)
    flag = pd.Series(True, index=back.index, dtype=pd.ArrowDtype(pa.bool_()))
    out["disabled_by_sync"] = (back, flag, ~flag)
    left_at = old("left_at")
    out["left_at"] = (back & left_at.notna(), left_at, pd.Series(None, index=back.index, dtype=pd.ArrowDtype(TIMESTAMP)))
    if rules.fields["enabled"].policy is not Policy.IMPORT:
        no = pd.Series(False, index=back.index)
        enabled_before = old("enabled")
        enabled_changed, _old, new_enabled = out.get("enabled", (no, enabled_before, enabled_before))
        reenable = back & ~enabled_changed
        out["enabled"] = (enabled_changed | reenable, enabled_before, new_enabled.where(~reenable, True))
    return out


def _match(keys: pd.Series, existing_keys: pd.Series, keyed: pd.Series) -> np.ndarray:
    """For each key, the row of ``existing`` holding it (the last one, as a dict would keep), or -1."""
    known = existing_keys[keyed]
    known = known[~known.duplicated(keep="last")]
    at = pc.index_in(pa.array(keys.array, type=pa.string()), value_set=pa.array(known.array, type=pa.string()))
    hit = pc.fill_null(at, -1).to_numpy(zero_copy_only=False)
    rows = known.index.to_numpy()
    return np.where(hit >= 0, rows[np.maximum(hit, 0)] if len(rows) else -1, -1)


def diff_frames(rules: Rules, mapped: pd.DataFrame, existing: pd.DataFrame, skipped: list[Skipped],
                read: int, removed: set[str] | None = None, as_of: datetime | None = None,
                one_account: bool = False, explain: Identity | None = None,
                decisions: Mapping[str, Decision] | None = None) -> ChangeTables:
    """The change set of ``mapped`` (frame of ``tables.mapped_schema``) against the users table ``existing``.

    ``removed``: for a delta read, the anchors of accounts deleted or moved out of scope since the watermark
    (``mapped`` then holds only the accounts that changed); None for a full read. ``as_of``: the run's time,
    against which grace periods are counted (default: now). ``one_account``: a single-account run, which
    removes nobody (``removed`` is then empty). ``explain``: the account such a run asks about, whose match the
    plan records (``plan.explained``) for its explanation. ``decisions``: the source's live cases by key
    (``plan.cases``), what admins decided about held numbers and proposed matches.

    One function on purpose: its phases (match by anchor and key, admit claims, compare columns, find leavers)
    share a dozen aligned frames and masks over the same rows; split apart, each phase would take and return
    most of them, and the alignment that makes the diff columnar would be spread over call boundaries.
    """
    src = rules.source
    source, anchored = src.name, src.external_id_attribute is not None
    value_fields = value_fields_of(rules)
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    plan = ChangeTables(source=source, read=read, as_of=as_of.isoformat())
    out_skipped = list(skipped)

    mapped = mapped.reset_index(drop=True)
    keys = _keys(mapped["ad_username"], mapped["domain"])
    hold = mapped["hold"].fillna(False).astype(bool) if "hold" in mapped else pd.Series(False, index=keys.index)
    plan.held = int(hold.sum())
    no_anchor = pd.Series(None, index=keys.index, dtype=keys.dtype)
    anchors = _anchors(mapped["external_id"]) if anchored else no_anchor
    dup, dup_skipped = _duplicates(mapped, keys, anchors)
    out_skipped += dup_skipped

    existing = existing.reset_index(drop=True)
    if "left_at" not in existing:
        existing["left_at"] = pd.Series(None, index=existing.index, dtype=pd.ArrowDtype(TIMESTAMP))
    keyed = ~_blank(existing["ad_username"]) & ~_blank(existing["domain"])
    existing_keys = _keys(existing["ad_username"], existing["domain"])
    owned = keyed & (existing["source"] == source).fillna(False).astype(bool)
    plan.owned = int(owned.sum())
    existing_anchors = _anchors(existing["external_id"]).where(owned) if anchored else \
        pd.Series(None, index=existing.index, dtype=keys.dtype)

    # Candidates in key order; a candidate's position in that order decides who gets a contested claim.
    candidate_rows = np.flatnonzero(~(dup | hold).to_numpy())
    candidate_rows = candidate_rows[np.argsort(keys.iloc[candidate_rows].to_numpy(), kind="stable")]
    positions = np.arange(len(candidate_rows))
    erows, recreated = _identify(rules, keys.iloc[candidate_rows], anchors.iloc[candidate_rows], existing_keys,
                                 existing_anchors, keyed)
    decisions = decisions or {}
    correlation = Correlation()
    if rules.match or any(d.decision for d in decisions.values()):  # accounts no user has: existing local users?
        open_positions = np.flatnonzero((erows < 0) & ~np.isin(positions, list(recreated)))
        accounts = mapped.iloc[candidate_rows[open_positions]].set_index(pd.Index(open_positions))
        local = (~keyed & _blank(existing["source"])).to_numpy(dtype=bool)
        correlation = correlate(rules, accounts, existing, local, decisions, anchored)
        for position, row in correlation.links.items():
            erows[position] = row
    waiting = np.isin(positions, list(correlation.waiting))
    matched = erows >= 0

    # Every account the source holds, mapped or not: none of their users may be deleted.
    skipped_keys = pd.Series([KEY_SEP.join(match_key(s.ad_username, s.domain)) for s in skipped
                              if s.ad_username and s.domain], dtype=keys.dtype)
    skipped_anchors = _anchors(pd.Series([s.external_id for s in skipped], dtype=keys.dtype))
    gone = _gone(existing_keys, existing_anchors, owned, erows,
                 present_keys=pd.concat([keys, skipped_keys], ignore_index=True),
                 present_anchors=pd.concat([anchors, skipped_anchors], ignore_index=True).dropna(),
                 protected_keys=pd.concat([keys[dup | hold], skipped_keys], ignore_index=True),
                 removed=None if removed is None else {a.casefold() for a in removed},
                 disabled_before=existing["disabled_by_sync"].fillna(False).astype(bool) & (not one_account))
    deleted = leavers.plan_leavers(rules, existing, gone, as_of, plan)
    if explain is not None:
        plan.explained = decide(rules, existing, existing_keys, existing_anchors, keyed, explain, as_of)
    del keys, skipped_keys

    pairs_new, pairs_old = _Rows(mapped, candidate_rows[matched]), _Rows(existing, erows[matched])
    owner = pairs_old("source")
    foreign = (~_blank(owner) & (owner != source).fillna(False).astype(bool)).to_numpy()
    if foreign.any():
        theirs, mine = pairs_old.subset(foreign), pairs_new.subset(foreign)
        for account, ad, dom, anchor, user, other in zip(*map(_py, (mine("account"), mine("ad_username"), mine("domain"),
                                                         mine("external_id"), theirs("username"), theirs("source")))):
            out_skipped.append(Skipped(account, f"user {user!r} is owned by source {other!r}", ad, dom, anchor,
                                       SkipCode.OWNED_ELSEWHERE))

    # Updates: only the columns whose value the rules say to write and that differ.
    ours_new, ours_old = pairs_new.subset(~foreign), pairs_old.subset(~foreign)
    columns = _update_columns(rules, ours_old, ours_new, value_fields)
    names = list(columns)
    changed = np.column_stack([columns[c][0].to_numpy(dtype=bool) for c in names]) if len(ours_new) \
        else np.zeros((0, len(names)), bool)
    any_change = changed.any(axis=1)
    frozen = _frozen(rules, ours_old, np.asarray(any_change, dtype=bool))
    if frozen:
        plan.holds = pa.concat_tables([plan.holds, leavers.lifecycle(existing, frozen, reasons=frozen)])
        plan.held += len(frozen)
        any_change &= ~ours_old("id").isin(list(frozen)).to_numpy(dtype=bool)
    plan.unchanged = int((~any_change).sum()) - len(frozen)
    changed = changed[any_change]
    columns = {c: (ch[any_change].reset_index(drop=True), before[any_change].reset_index(drop=True),
                   after[any_change].reset_index(drop=True)) for c, (ch, before, after) in columns.items()}
    upd_old = ours_old.subset(np.asarray(any_change))
    upd_positions = positions[matched][~foreign][any_change]

    # Inserts: full rows for accounts no user has (proposed matches wait for a person).
    new_positions = positions[~matched & ~waiting]
    inserts = _insert_rows(_Rows(mapped, candidate_rows[~matched & ~waiting]), value_fields, source)

    # Admit inserts and updates only while their username, sync key and numbers stay unique; a number another
    # user holds is held aside (a case) where the rules say so, and the change admitted without it.
    upd_ids = upd_old("id").to_numpy(dtype=np.int64)
    claimed_from = _takes(mapped, existing, decisions, plan)
    verdicts = _admission(claimed_from, deleted, inserts, new_positions, upd_old, upd_ids, upd_positions, columns)
    numbers_held: list[tuple[int, str, str, int]] = []
    for _round in NUMBER_FIELDS:  # each round frees at least one field of a change, so this many at most
        found = _hold_numbers(rules.held_numbers(), verdicts.blocked, inserts, new_positions, columns, changed,
                              names, upd_positions)
        if not found:
            break
        numbers_held += found
        verdicts = _admission(claimed_from, deleted, inserts, new_positions, upd_old, upd_ids, upd_positions, columns)

    insert_rows = _rows_in_order(verdicts.order, new_positions, len(positions))
    if not np.array_equal(insert_rows, np.arange(len(inserts))):  # a clash or contested claim reordered them
        inserts = inserts.iloc[insert_rows]
    plan.inserts = frame_table(inserts, INSERTS_SCHEMA)
    del inserts
    upd_rows = _rows_in_order(verdicts.order, upd_positions, len(positions))
    still = changed[upd_rows].any(axis=1) if len(upd_rows) else np.zeros(0, bool)  # a held number was all it changed
    plan.unchanged += int((~still).sum())
    plan.updates = _updates_table(upd_ids, upd_old("username"), columns, names, changed, upd_rows[still])

    clashes = dict(verdicts.clashes)
    candidates = _Rows(mapped, candidate_rows)
    _number_cases(plan, numbers_held, candidates, existing, clashes, anchored)
    _decided(plan, correlation, clashes, candidates)
    _explain_recreated(rules, existing, candidates, recreated, clashes, plan)
    if clashes:
        clashed = sorted(clashes)
        who = _Rows(mapped, candidate_rows[clashed])
        for position, account, ad, dom, anchor in zip(clashed, *map(_py, (who("account"), who("ad_username"),
                                                                           who("domain"), who("external_id")))):
            out_skipped.append(Skipped(account, clashes[position][1], ad, dom, anchor, clashes[position][0]))
    plan.skipped = pa.Table.from_pylist([s.__dict__ for s in out_skipped], schema=SKIPPED_SCHEMA)
    plan.returns = leavers.returns(existing, plan.updates, as_of)
    return plan


def _frozen(rules: Rules, old: _Rows, changing: np.ndarray) -> dict[int, str]:
    """Protected users whose ``protect:`` entry says ``updates: false`` and that this run would update: id → why."""
    if all(r.updates for r in rules.protect) or not changing.any():
        return {}
    out = {}
    for row in records(old.frame.iloc[old.rows[changing]]):
        why = protection(rules.protect, row)
        if why is not None and not why[1]:
            out[int(row["id"])] = f"protected: {why[0]} (updates: false — its update is held)"
    return out


def _explain_recreated(rules: Rules, existing: pd.DataFrame, candidates: _Rows, recreated: dict[int, tuple[int, str]],
                       clashes: dict[int, tuple[str, str]], plan: ChangeTables) -> None:
    """Say why a re-created account replaced a user (a report note), or why it could not (its skip reason)."""
    anchor, policy = rules.source.external_id_attribute, rules.safety.deletion
    for position, (old_row, old_anchor) in recreated.items():
        user = existing.at[old_row, "username"]
        if position in clashes:  # the old user stays (disable / keep) and holds the name
            clashes[position] = (SkipCode.RECREATED_KEPT,
                                 f"re-created in the source (new {anchor}); user {user!r} of the old account "
                                 f"stays (deletion policy '{policy}'): delete that user, or set "
                                 "source.recreated_accounts: adopt")
            continue
        who = _Rows(candidates.frame, candidates.rows[[position]])
        fate = "deleted" if policy == "delete" else f"left to deletion policy {policy!r}"
        plan.notes.append(
            f"{who('domain')[0]}\\{who('ad_username')[0]} was re-created in the source ({anchor} {old_anchor} → "
            f"{who('external_id')[0]}): user {user!r} of the old account is {fate}, the new account is inserted "
            "(source.recreated_accounts: replace)")


def _identify(rules: Rules, keys: pd.Series, anchors: pd.Series, existing_keys: pd.Series,
              existing_anchors: pd.Series, keyed: pd.Series) -> tuple[np.ndarray, dict[int, tuple[int, str]]]:
    """For each candidate, the users-table row that is its user (or -1), and the re-created accounts.

    The anchor decides first (a renamed account keeps its user); then the key, for users without an anchor
    yet (filled in by this run) and for sources without one. A key match to a user holding another anchor is
    a re-created account: ``replace`` makes it a new user (returned as position → (old row, old anchor)),
    ``adopt`` lets it take over the old user.
    """
    by_key = _match(keys, existing_keys, keyed)
    if rules.source.external_id_attribute is None:
        return by_key, {}
    by_anchor = _match(anchors, existing_anchors, existing_anchors.notna())
    mine = anchors.reset_index(drop=True)
    if len(existing_anchors):
        theirs = existing_anchors.iloc[np.maximum(by_key, 0)].reset_index(drop=True).where(pd.Series(by_key >= 0))
    else:
        theirs = pd.Series(None, index=mine.index, dtype=mine.dtype)
    other_anchor = (theirs.notna() & mine.notna() & (theirs != mine).fillna(False)).to_numpy(dtype=bool)
    conflict = (by_anchor < 0) & (by_key >= 0) & other_anchor
    taken = np.isin(by_key, by_anchor[by_anchor >= 0]) & (by_anchor < 0)  # that user was renamed to another name
    if rules.source.recreated_accounts == "adopt":
        conflict = np.zeros(len(by_key), bool)
    rows = np.where(by_anchor >= 0, by_anchor, np.where(conflict | taken, -1, by_key))
    recreated = {int(p): (int(by_key[p]), str(existing_anchors.iloc[by_key[p]])) for p in np.flatnonzero(conflict & ~taken)}
    return rows, recreated


def _insert_rows(fresh: _Rows, value_fields: list[str], source: str) -> pd.DataFrame:
    """The full row of each new user: keep fields blank (false for flags), the rest from the rules."""
    inserts = pd.DataFrame(index=pd.RangeIndex(len(fresh)))
    for field in FIELDS:
        value = fresh(field) if field in value_fields else None
        if field in BOOL_FIELDS:
            inserts[field] = value.fillna(False).astype(bool) if value is not None else False
        else:
            inserts[field] = value if value is not None else pd.Series(None, index=inserts.index,
                                                                       dtype=pd.ArrowDtype(pa.string()))
    for column in ("ad_username", "domain", "external_id"):
        inserts[column] = fresh(column)
    inserts["source"] = source
    return inserts


def _admission(existing: pd.DataFrame, deleted: set, inserts: pd.DataFrame, new_positions: np.ndarray,
               upd_old: _Rows, upd_ids: np.ndarray, upd_positions: np.ndarray, columns: dict) -> claims.Verdicts:
    """Which inserts and updates keep usernames, sync keys and numbers unique (see ``claims``)."""
    final = {c: (columns[c][2].where(columns[c][0], upd_old(c)) if c in columns else upd_old(c))
             for c in ("username", "ad_username", "domain", *NUMBER_FIELDS)}

    def claimed(holders, rows):
        return claims.claim_table(holders, rows["username"], {c: rows[c] for c in NUMBER_FIELDS},
                                  key=_keys(rows["ad_username"], rows["domain"]))

    wanted = pa.concat_tables([claimed(new_positions, inserts), claimed(upd_positions, final)])
    released = claimed(upd_positions, {c: upd_old(c) for c in ("username", "ad_username", "domain", *NUMBER_FIELDS)})
    keyed = ~_blank(existing["ad_username"]) & ~_blank(existing["domain"])
    taken = claims.claim_table(existing["id"].to_numpy(dtype=np.int64), existing["username"],
                               {c: existing[c] for c in NUMBER_FIELDS}, only=wanted["claim"],
                               key=_keys(existing["ad_username"], existing["domain"]).where(keyed))
    taken = taken.filter(pc.invert(pc.is_in(taken["holder"], value_set=pa.array(sorted(deleted), pa.int64()))))
    holders = existing["id"].isin(taken["holder"].to_pylist())
    username_of = {int(k): v for k, v in zip(existing.loc[holders, "id"], existing.loc[holders, "username"])}
    return claims.admit(np.concatenate([new_positions, upd_positions]),
                        np.concatenate([-(new_positions + 1), upd_ids]), wanted, released, taken, username_of)


def _rows_in_order(order: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Row numbers (within the frame whose candidate positions are ``positions``) in admission ``order``."""
    row_at = np.full(n, -1)
    row_at[positions] = np.arange(len(positions))
    rows = row_at[order]
    return rows[rows >= 0]


def _updates_table(ids: np.ndarray, usernames: pd.Series, columns: dict, names: list[str], changed: np.ndarray,
                   rows: np.ndarray) -> pa.Table:
    """One row per admitted update: id, old username, the changed columns, and old → new of each."""
    data: dict[str, list] = {
        "id": ids[rows].tolist(),
        "username": usernames.to_numpy(dtype=object, na_value=None)[rows].tolist(),
        "changed": [[names[j] for j in np.flatnonzero(changed[i])] for i in rows],
    }
    for c in names:
        ch, old, new = columns[c]
        data[f"old_{c}"] = old.where(ch, None).to_numpy(dtype=object, na_value=None)[rows].tolist()
        data[f"new_{c}"] = new.where(ch, None).to_numpy(dtype=object, na_value=None)[rows].tolist()
    empty = [None] * len(rows)
    return pa.Table.from_pydict({n: data.get(n, empty) for n in UPDATES_SCHEMA.names}, schema=UPDATES_SCHEMA)


def decide(rules: Rules, existing: pd.DataFrame, existing_keys: pd.Series, existing_anchors: pd.Series,
           keyed: pd.Series, identity: Identity, as_of: datetime) -> dict[str, Any]:
    """What the diff decides about one account (the one a single-account run asks about), with the matcher the
    whole diff uses: the user it is (``user``, ``how``: anchor, key, ambiguous or none), whether it was renamed,
    re-created or adopted, and what would become of the user if the account were gone (``if_gone``, by the
    leavers' own rules). An explanation renders this record; it never matches again."""
    key, domain, anchor, read = identity
    out: dict[str, Any] = {"how": "", "user": None, "owner": None, "renamed": False, "recreated": None,
                           "adopted": False, "no_anchor_yet": False, "if_gone": None}
    row_at = -1
    anchors = _anchors(pd.Series([anchor], dtype=existing_keys.dtype)) if rules.source.external_id_attribute \
        else pd.Series([None], dtype=existing_keys.dtype)
    by_anchor = _match(anchors, existing_anchors, existing_anchors.notna()) if anchors.notna().any() else np.array([-1])
    if domain or not key:
        keys = _keys(pd.Series([key or ""], dtype=existing_keys.dtype), pd.Series([domain or ""], dtype=existing_keys.dtype))
        if read:  # an account the source holds: matched exactly as the run matches it
            rows, recreated = _identify(rules, keys, anchors, existing_keys, existing_anchors, keyed)
            if 0 in recreated:
                old_row, old_anchor = recreated[0]
                out["recreated"] = {"user": int(existing.at[old_row, "id"]), "anchor": old_anchor}
        else:  # only a name: the user holding it as anchor, else as AD username + Domain
            rows = np.where(by_anchor >= 0, by_anchor, _match(keys, existing_keys, keyed))
        row_at = int(rows[0])
        out["how"] = "anchor" if by_anchor[0] >= 0 and row_at == by_anchor[0] else "key" if row_at >= 0 else ""
    elif by_anchor[0] >= 0:
        row_at, out["how"] = int(by_anchor[0]), "anchor"
    else:  # no Domain to go by: the AD username alone, when exactly one user holds it
        same = np.flatnonzero((casefold(existing["ad_username"].str.strip()) == key.strip().casefold())
                              .fillna(False).to_numpy(dtype=bool))
        if len(same) > 1:
            out["how"] = "ambiguous"
        elif len(same):
            row_at, out["how"] = int(same[0]), "key"
    if row_at < 0:
        return out
    row = existing.iloc[row_at]
    out["user"], out["owner"] = int(row["id"]), (row["source"] if isinstance(row["source"], str) and row["source"] else None)
    held = row["external_id"] if isinstance(row["external_id"], str) and row["external_id"].strip() else None
    if out["how"] == "anchor":
        out["renamed"] = str(row["ad_username"] or "").casefold() != str(key or "").casefold()
    elif rules.source.external_id_attribute and out["owner"] == rules.source.name:
        out["no_anchor_yet"] = held is None
        out["adopted"] = held is not None and anchor is not None and held.casefold() != anchor.casefold()
    if out["owner"] == rules.source.name and not rules.source.on_demand:
        out["if_gone"] = leavers.fate(rules, existing, out["user"], as_of)
    return out


def _takes(mapped: pd.DataFrame, existing: pd.DataFrame, decisions: Mapping[str, Decision],
           plan: ChangeTables) -> pd.DataFrame:
    """The users table as the uniqueness checks see it once ``give`` decisions have taken their numbers from
    the holders (``plan.takes``, cleared by apply first). A number is taken only while its holder still has it
    and an account of this run still claims it."""
    gives = [d for d in decisions.values() if d.decision == GIVE and d.user_id is not None and d.field in NUMBER_FIELDS
             and d.field in mapped and (mapped[d.field] == d.value).fillna(False).any()]
    if not gives:
        return existing
    view = existing.assign(**{str(f): existing[f].copy() for f in {d.field for d in gives}})
    takes, decided = [], []
    for d in gives:
        assert d.field is not None
        at = np.flatnonzero((existing["id"] == d.user_id).to_numpy(dtype=bool) &
                            (existing[d.field] == d.value).fillna(False).to_numpy(dtype=bool))
        if not len(at):
            decided.append(d.row(CLOSED, f"the holder no longer has {d.field} {d.value}"))
            continue
        view.loc[view.index[at[0]], d.field] = None
        holder = existing.at[existing.index[at[0]], "username"]
        takes.append({"id": d.user_id, "username": holder, "field": d.field, "value": d.value, "case_id": d.case_id})
        decided.append(d.row(CLOSED, f"given: {d.field} {d.value} taken from user {holder!r} for the claimant"))
    plan.takes = pa.Table.from_pylist(takes, schema=TAKES_SCHEMA)
    plan.decided = pa.concat_tables([plan.decided, pa.Table.from_pylist(decided, schema=DECIDED_SCHEMA)])
    return view


def _hold_numbers(held: frozenset[str], blocked: dict[int, tuple[str, int]], inserts: pd.DataFrame,
                  new_positions: np.ndarray, columns: dict, changed: np.ndarray, names: list[str],
                  upd_positions: np.ndarray) -> list[tuple[int, str, str, int]]:
    """Take the numbers other users hold out of the refused changes whose rules hold them (``on_clash: hold``):
    an insert gets the field empty, an update leaves it as it was. Returns (position, field, value, holder) of
    each number held; the changes are then admitted again."""
    out = []
    for position, (claim, holder) in sorted(blocked.items()):
        if not claim.startswith("n:"):
            continue
        value = claim[2:]
        at = int(np.searchsorted(new_positions, position))
        inserting = at < len(new_positions) and new_positions[at] == position
        if inserting:
            fields = [f for f in NUMBER_FIELDS if _is(inserts[f].iloc[at], value)]
        else:
            at = int(np.searchsorted(upd_positions, position))
            fields = [f for f in NUMBER_FIELDS if f in columns and bool(columns[f][0].iloc[at])
                      and _is(columns[f][2].iloc[at], value)]
        if not fields or not set(fields) <= held:
            continue  # a field the rules do not hold: the claim stays refused (skipped)
        for f in fields:
            if inserting:
                inserts.loc[inserts.index[at], f] = None
            else:
                columns[f][0].iloc[at] = False
                changed[at, names.index(f)] = False
        out += [(position, f, value, holder) for f in fields]
    return out


def _is(cell: Any, value: str) -> bool:
    return isinstance(cell, str) and cell == value


def _number_cases(plan: ChangeTables, held: list[tuple[int, str, str, int]], candidates: _Rows,
                  existing: pd.DataFrame, clashes: dict[int, tuple[str, str]], anchored: bool) -> None:
    """One case per number held aside, naming the claimant and the holder (local user, another source's user,
    a protected user, or another account of this run)."""
    held = [h for h in held if h[0] not in clashes]  # still skipped for another reason: the skip says it
    if not held:
        return
    positions = [p for p, _f, _v, _h in held]
    who = candidates.subset(np.isin(np.arange(len(candidates)), positions))
    at = {p: i for i, p in enumerate(sorted(set(positions)))}
    shown = {c: _py(who(c)) for c in ("account", "username", "ad_username", "domain", "external_id")}
    holder_ids = [h for _p, _f, _v, h in held if h >= 0]
    rows = existing[existing["id"].isin(holder_ids)]
    holders = {int(i): (u, s, bool(pr)) for i, u, s, pr in zip(rows["id"], rows["username"], _py(rows["source"]),
                                                                 rows["sync_protected"].fillna(False))}
    out = []
    for position, field, value, holder in held:
        i = at[position]
        if holder >= 0:
            name, owner, protected = holders[holder]
            kind = ("a protected user" if protected else "") or (f"a user of source {owner!r}" if owner else "a local user")
            holder_id: int | None = holder
        else:
            other = -holder - 1
            name, owner, protected = _py(candidates.subset(np.array([other]))("username"))[0], plan.source, False
            kind, holder_id = "another account of this run", None
        key = number_key(claimant(shown["ad_username"][i], shown["domain"][i],
                                  shown["external_id"][i] if anchored else None), field)
        out.append({"key": key, "kind": NUMBER, **{c: shown[c][i] for c in shown}, "field": field, "value": value,
                    "holder_id": holder_id, "holder": name,
                    "detail": json.dumps({"holder_is": kind, "holder_source": owner, "holder_protected": protected})})
    plan.cases = pa.concat_tables([plan.cases, pa.Table.from_pylist(out, schema=CASES_SCHEMA)])


def _decided(plan: ChangeTables, correlation: Correlation, clashes: dict[int, tuple[str, str]],
             candidates: _Rows) -> None:
    """The match decisions this run applied, and how each ended; proposals as cases. A rejected account that
    cannot be a new user either stays skipped as a rejected match; a confirmed link refused by a clash is
    reopened."""
    rows = []
    for position, row in sorted(correlation.decided.items()):
        if position in clashes and row["status"] == CLOSED:
            _code, reason = clashes[position]
            if position in correlation.rejected:
                clashes[position] = (SkipCode.REJECTED_MATCH, f"rejected match: {reason}")
                row = {**row, "status": REJECTED, "outcome": f"rejected, and not a new user either: {reason}"}
            else:
                row = {**row, "status": OPEN, "outcome": f"not applied: {reason}; decide again"}
        rows.append(row)
    plan.decided = pa.concat_tables([plan.decided, pa.Table.from_pylist(rows, schema=DECIDED_SCHEMA)])
    plan.cases = pa.concat_tables([plan.cases, pa.Table.from_pylist(correlation.cases, schema=CASES_SCHEMA)])
