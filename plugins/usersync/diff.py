"""Mapped source users + current users table → the change set, computed in columns (pandas over Arrow).

Matching is on (AD username, Domain), case-insensitively. The diff is where the table's business rules are
kept: local users (blank key) are never touched, a source only updates or deletes users it owns, usernames
and phone numbers stay unique (a clashing source user is skipped, nobody else is affected — see ``claims``),
and an account that exists in the source — even one skipped for bad data — is never deleted.

The work is a join of two frames and column comparisons, so a run with nothing changed costs a few vector
operations whatever the directory size; Python objects are made only for what changes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from usersync import claims
from usersync.frames import casefold
from usersync.changes import ChangeSet, Skipped, match_key
from usersync.fields import BOOL_FIELDS, FIELDS, NUMBER_FIELDS, Policy
from usersync.mapping import MappedUser
from usersync.plan_tables import INSERTS_SCHEMA, LEAVERS_SCHEMA, UPDATES_SCHEMA, ChangeTables
from usersync.rules import Rules
from usersync.tables import SKIPPED_SCHEMA, mapped_batch, rows_frame, to_frame, value_fields_of

Row = Mapping[str, Any]
_SEP = "\x1f"  # sorts below every printable character: "a<SEP>b" orders like the tuple ("a", "b")


def insert_row(rules: Rules, user: MappedUser) -> dict[str, Any]:
    """The full row for a new user: keep fields blank (false for flags), the rest from the rules."""
    row: dict[str, Any] = {}
    for field in FIELDS:
        rule = rules.fields.get(field)
        value = user.values.get(field) if rule and rule.policy is not Policy.KEEP else None
        row[field] = (bool(value) if value is not None else False) if field in BOOL_FIELDS else value
    row.update(ad_username=user.ad_username, domain=user.domain, source=rules.source.name, external_id=user.external_id)
    return row


def compute_diff(rules: Rules, mapped: Iterable[MappedUser], existing: Iterable[Row],
                 skipped: Iterable[Skipped] = (), read: int = 0) -> ChangeSet:
    """The typed change set for small inputs (tests, examples): the columnar diff over row objects."""
    mapped_frame = to_frame(pa.Table.from_batches([mapped_batch(list(mapped), value_fields_of(rules))]))
    return diff_frames(rules, mapped_frame, rows_frame(existing), list(skipped), read).to_changeset()


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
    return casefold(ad_username.str.strip()) + _SEP + casefold(domain.str.strip())


def _frame_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame.reindex(columns=schema.names), schema=schema, preserve_index=False)


def _leavers(rules: Rules, existing: pd.DataFrame, keyed: pd.Series, present: pd.Series, plan: ChangeTables):
    """Owned users whose account is gone: deleted, disabled or kept as the deletion policy says."""
    owned = keyed & (existing["source"] == rules.source.name).fillna(False).astype(bool)
    plan.owned = int(owned.sum())
    gone = owned & ~_keys(existing["ad_username"], existing["domain"]).isin(present).fillna(False).astype(bool)
    policy = rules.safety.deletion
    columns = ["id", "username", "ad_username", "domain"]
    if policy == "delete":
        plan.deletes = _frame_table(existing.loc[gone, columns], LEAVERS_SCHEMA)
    elif policy == "disable":
        already = existing["disabled_by_sync"].fillna(False).astype(bool)
        plan.disables = _frame_table(existing.loc[gone & ~already, columns], LEAVERS_SCHEMA)
        plan.kept = int((gone & already).sum())
    else:
        plan.kept = int(gone.sum())
    return set(plan.deletes.column("id").to_pylist())


def _duplicates(mapped: pd.DataFrame, keys: pd.Series) -> tuple[pd.Series, list[Skipped]]:
    """Accounts sharing one key: all copies are skipped (which one is right cannot be known)."""
    dup = keys.duplicated(keep=False)
    out: list[Skipped] = []
    if dup.any():
        rows = mapped[dup].assign(_key=keys[dup]).sort_values("_key", kind="stable")
        for _key, group in rows.groupby("_key", sort=True):
            accounts = ", ".join(group["account"])
            out += [Skipped(a, f"duplicate key {d}\\{u} in the source ({accounts})", u, d)
                    for a, u, d in zip(group["account"], group["ad_username"], group["domain"])]
    return dup, out


def _update_columns(rules: Rules, m: pd.DataFrame, value_fields: list[str]) -> dict[str, tuple[pd.Series, pd.Series, pd.Series]]:
    """Per column the rules may write on a matched user: (changed?, old, new)."""
    out: dict[str, tuple[pd.Series, pd.Series, pd.Series]] = {}
    for field in value_fields:
        policy = rules.fields[field].policy
        old, new = m[f"old_{field}"], m[field]
        if policy in (Policy.IMPORT, Policy.PREFIX):
            out[field] = (~_same(old, new), old, new)
        elif policy is Policy.DEFAULT_IF_EMPTY:
            out[field] = (_blank(old) & ~_blank(new), old, new)
    source = pd.Series(rules.source.name, index=m.index, dtype=pd.ArrowDtype(pa.string()))
    for column, new in (("ad_username", m["ad_username"]), ("domain", m["domain"]), ("source", source)):
        out[column] = (_differs(m[f"old_{column}"], new), m[f"old_{column}"], new)  # case-only renames too
    has_id = ~_blank(m["external_id"])
    out["external_id"] = (has_id & _differs(m["old_external_id"], m["external_id"]), m["old_external_id"], m["external_id"])
    # the account is back: undo what deletion policy 'disable' did
    back = m["old_disabled_by_sync"].fillna(False).astype(bool)
    flag = pd.Series(True, index=m.index, dtype=pd.ArrowDtype(pa.bool_()))
    out["disabled_by_sync"] = (back, flag, ~flag)
    if rules.fields["enabled"].policy is not Policy.IMPORT:
        no = pd.Series(False, index=m.index)
        enabled_changed, _old, new_enabled = out.get("enabled", (no, m["old_enabled"], m["old_enabled"]))
        reenable = back & ~enabled_changed
        out["enabled"] = (enabled_changed | reenable, m["old_enabled"], new_enabled.where(~reenable, True))
    return out


def diff_frames(rules: Rules, mapped: pd.DataFrame, existing: pd.DataFrame, skipped: list[Skipped],
                read: int) -> ChangeTables:
    """The change set of ``mapped`` (frame of ``tables.mapped_schema``) against the users table ``existing``."""
    source = rules.source.name
    value_fields = value_fields_of(rules)
    plan = ChangeTables(source=source, read=read)
    out_skipped = list(skipped)

    mapped = mapped.reset_index(drop=True)
    keys = _keys(mapped["ad_username"], mapped["domain"])
    # Every key the source holds, mapped or not: none of these users may be deleted.
    skipped_keys = [_SEP.join(match_key(s.ad_username, s.domain)) for s in skipped if s.ad_username and s.domain]
    present = pd.concat([keys, pd.Series(skipped_keys, dtype=keys.dtype)], ignore_index=True)

    existing = existing.reset_index(drop=True)
    keyed = ~_blank(existing["ad_username"]) & ~_blank(existing["domain"])
    deleted = _leavers(rules, existing, keyed, present, plan)

    dup, dup_skipped = _duplicates(mapped, keys)
    out_skipped += dup_skipped
    candidates = mapped[~dup].assign(_key=keys[~dup]).sort_values("_key", kind="stable").reset_index(drop=True)
    candidates["position"] = np.arange(len(candidates))

    by_key = existing[keyed].assign(_key=_keys(existing.loc[keyed, "ad_username"], existing.loc[keyed, "domain"]))
    by_key = by_key.drop_duplicates("_key", keep="last").add_prefix("old_").rename(columns={"old__key": "_key"})
    m = candidates.merge(by_key, on="_key", how="left", sort=False)
    matched = m["old_id"].notna()

    owner = m["old_source"]
    foreign = matched & ~_blank(owner) & (owner != source).fillna(False).astype(bool)
    for account, ad, dom, user, other in zip(*(m.loc[foreign, c] for c in
                                               ("account", "ad_username", "domain", "old_username", "old_source"))):
        out_skipped.append(Skipped(account, f"user {user!r} is owned by source {other!r}", ad, dom))

    # Updates: only the columns whose value the rules say to write and that differ.
    upd = m[matched & ~foreign]
    columns = _update_columns(rules, upd, value_fields)
    names = list(columns)
    changed = np.column_stack([columns[c][0].to_numpy(dtype=bool) for c in names]) if len(upd) else np.zeros((0, len(names)), bool)
    any_change = changed.any(axis=1) if len(names) else np.zeros(len(upd), bool)
    plan.unchanged = int((~any_change).sum())
    upd, changed = upd[any_change], changed[any_change]
    columns = {c: (ch[any_change], old[any_change], new[any_change]) for c, (ch, old, new) in columns.items()}

    # Inserts: full rows for accounts no user has.
    new = m[~matched]
    inserts = pd.DataFrame(index=new.index)
    for field in FIELDS:
        value = new[field] if field in value_fields else None
        if field in BOOL_FIELDS:
            inserts[field] = value.fillna(False).astype(bool) if value is not None else False
        else:
            inserts[field] = value if value is not None else pd.Series(None, index=new.index, dtype=pd.ArrowDtype(pa.string()))
    for column in ("ad_username", "domain", "external_id"):
        inserts[column] = new[column]
    inserts["source"] = source

    # Admit inserts and updates only while their username and numbers stay unique.
    final = {c: (columns[c][2].where(columns[c][0], upd[f"old_{c}"]) if c in columns else upd[f"old_{c}"])
             for c in ("username", *NUMBER_FIELDS)}
    planned = pd.DataFrame({
        "position": np.concatenate([new["position"].to_numpy(), upd["position"].to_numpy()]),
        "holder": np.concatenate([-(new["position"].to_numpy() + 1), upd["old_id"].to_numpy(dtype=np.int64)]),
    })
    wanted = pd.concat([
        claims.claim_frame(new["position"], inserts["username"], {c: inserts[c] for c in NUMBER_FIELDS}),
        claims.claim_frame(upd["position"], final["username"], {c: final[c] for c in NUMBER_FIELDS}),
    ], ignore_index=True).rename(columns={"holder": "position"})
    released = claims.claim_frame(upd["position"], upd["old_username"], {c: upd[f"old_{c}"] for c in NUMBER_FIELDS}) \
        .rename(columns={"holder": "position"})
    stays = existing[~existing["id"].isin(deleted)]
    held = claims.claim_frame(stays["id"], stays["username"], {c: stays[c] for c in NUMBER_FIELDS})
    held = held[held["claim"].isin(wanted["claim"])]
    username_of = dict(zip(existing.loc[existing["id"].isin(held["holder"]), "id"],
                           existing.loc[existing["id"].isin(held["holder"]), "username"]))
    verdicts = claims.admit(planned, wanted, released, held, {int(k): v for k, v in username_of.items()})

    ins_rows = _rows_in_order(verdicts.order, new["position"].to_numpy(), len(candidates))
    upd_rows = _rows_in_order(verdicts.order, upd["position"].to_numpy(), len(candidates))
    plan.inserts = _frame_table(inserts.iloc[ins_rows], INSERTS_SCHEMA)
    plan.updates = _updates_table(upd, columns, names, changed, upd_rows)

    by_position = candidates.set_index("position")
    for position in sorted(verdicts.clashes):
        row = by_position.loc[position]
        out_skipped.append(Skipped(row["account"], verdicts.clashes[position], row["ad_username"], row["domain"]))
    plan.skipped = pa.Table.from_pylist([s.__dict__ for s in out_skipped], schema=SKIPPED_SCHEMA)
    return plan


def _rows_in_order(order: np.ndarray, positions: np.ndarray, n: int) -> list[int]:
    """Row numbers (within the frame whose candidate positions are ``positions``) in admission ``order``."""
    row_at = np.full(n, -1)
    row_at[positions] = np.arange(len(positions))
    rows = row_at[order]
    return rows[rows >= 0].tolist()


def _updates_table(upd: pd.DataFrame, columns: dict, names: list[str], changed: np.ndarray, rows: list[int]) -> pa.Table:
    """One row per admitted update: id, old username, the changed columns, and old → new of each."""
    data: dict[str, list] = {
        "id": upd["old_id"].to_numpy(dtype=np.int64)[rows].tolist(),
        "username": upd["old_username"].to_numpy(dtype=object, na_value=None)[rows].tolist(),
        "changed": [[names[j] for j in np.flatnonzero(changed[i])] for i in rows],
    }
    for c in names:
        ch, old, new = columns[c]
        data[f"old_{c}"] = old.where(ch, None).to_numpy(dtype=object, na_value=None)[rows].tolist()
        data[f"new_{c}"] = new.where(ch, None).to_numpy(dtype=object, na_value=None)[rows].tolist()
    empty = [None] * len(rows)
    return pa.Table.from_pydict({n: data.get(n, empty) for n in UPDATES_SCHEMA.names}, schema=UPDATES_SCHEMA)
