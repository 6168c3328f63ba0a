"""Which accounts no user has yet are existing local users: the ``match:`` rules and the admins' decisions.

Only local users (no AD username, Domain or owner) are candidates: a user a source owns is matched by that
source's key or anchor, never guessed. A match is *sure* — linked by the run — when a ``link`` rule finds exactly
one user, no other rule points the account at another user and no other account points at that user. Anything
less is a proposal: a case that lists every candidate (with the other accounts each one is proposed for), and
the account is neither inserted nor linked until a person decides. A confirmed case links the account to the
user chosen; a rejected one makes it a new user.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from usersync.plan.cases import CLOSED, CONFIRM, MATCH, OPEN, REJECT, Decision, claimant, match_key
from usersync.plan.frames import casefold
from usersync.rules import Rules
from usersync.rules.match import MatchRule
from usersync.rules.transforms import compile_chain, run_chain

#: the values a case shows of the account and of each candidate, side by side
SHOWN = ("username", "first_name", "last_name", "email", "extension", "department")


@dataclass
class Correlation:
    links: dict[int, int] = field(default_factory=dict)  # position → row of ``existing`` it is linked to
    waiting: set[int] = field(default_factory=set)  # proposals: neither inserted nor linked this run
    rejected: set[int] = field(default_factory=set)  # a person said: a new user
    cases: list[dict] = field(default_factory=list)  # ``CASES_SCHEMA`` rows of the proposals
    decided: dict[int, dict] = field(default_factory=dict)  # position → ``DECIDED_SCHEMA`` row of its decision


def _text(values: pd.Series) -> pd.Series:
    """Compared form: trimmed, case-insensitive, blank as missing."""
    folded = casefold(values.astype("string").str.strip()) if len(values) else values.astype("string")
    return folded.where(folded.fillna("") != "")


def _values(frame: pd.DataFrame, rule: MatchRule, account: bool) -> pd.Series:
    if rule.by == "name":
        first, last = _text(frame["first_name"]), _text(frame["last_name"])
        return (first + " " + last).where(first.notna() & last.notna())
    values = frame[rule.fields[0]].astype("string")
    if account and rule.transforms:
        chain = compile_chain(rule.transforms)
        values = pd.Series([_transformed(v, chain) for v in values.to_numpy(dtype=object, na_value=None)],
                           index=values.index, dtype="string")
    return _text(values)


def _transformed(value, chain) -> str | None:
    if value is None:
        return None
    try:
        out = run_chain(value, chain)
    except Exception:  # noqa: BLE001 - a value the transform cannot take matches nothing
        return None
    return out if isinstance(out, str) else None


def _pairs(rules: Rules, accounts: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """(position, row, rule) of every hit: account ``position`` equals local user ``row`` by rule number ``rule``."""
    found = []
    for number, rule in enumerate(rules.match):
        if not all(f in accounts for f in rule.fields):
            continue
        mine = pd.DataFrame({"position": accounts.index, "value": _values(accounts, rule, True).to_numpy()}).dropna()
        theirs = pd.DataFrame({"row": users.index, "value": _values(users, rule, False).to_numpy()}).dropna()
        hits = mine.merge(theirs, on="value")[["position", "row"]]
        found.append(hits.assign(rule=number))
    if not found:
        return pd.DataFrame({"position": [], "row": [], "rule": []}, dtype=int)
    return pd.concat(found, ignore_index=True)


def correlate(rules: Rules, accounts: pd.DataFrame, existing: pd.DataFrame, local: np.ndarray,
              decisions: Mapping[str, Decision], anchored: bool) -> Correlation:
    """Decide, for each account of ``accounts`` (indexed by candidate position; no user matched it by key or
    anchor), whether it is linked, proposed, rejected or simply new. ``local``: which rows of ``existing`` are
    local users; ``decisions``: the live cases of this source by key."""
    out = Correlation()
    keys = {int(p): match_key(claimant(a, d, x if anchored else None)) for p, a, d, x in zip(
        accounts.index, *(accounts[c].to_numpy(dtype=object, na_value=None) for c in ("ad_username", "domain", "external_id")))}
    decided = {p: decisions[k] for p, k in keys.items() if k in decisions and decisions[k].decision in (CONFIRM, REJECT)}
    users = existing[local]
    row_of_id = dict(zip(users["id"].astype(int), users.index))
    taken: dict[int, int] = {}  # row → the position it was linked to this run
    for p in sorted(decided, key=lambda p: keys[p]):
        d = decided[p]
        row = row_of_id.get(int(d.user_id)) if d.user_id is not None else None
        if d.decision == REJECT:
            out.rejected.add(p)
            out.decided[p] = d.row(CLOSED, "rejected: inserted as a new user", user_id=None)
        elif row is not None and row not in taken:
            out.links[p], taken[row] = row, p
            out.decided[p] = d.row(CLOSED, f"confirmed: linked to user {existing.at[row, 'username']!r}")
        else:
            why = "is no longer a local user" if row is None else "was linked to another account by this run"
            out.waiting.add(p)
            out.decided[p] = d.row(OPEN, f"not applied: the chosen user (id {d.user_id}) {why}; decide again")
    if not rules.match:
        return out
    open_accounts = accounts[~accounts.index.isin([*out.links, *out.rejected])]
    pairs = _pairs(rules, open_accounts, users[~users.index.isin(list(taken))])
    if not len(pairs):
        return out
    by_account: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_user: dict[int, set[int]] = defaultdict(set)
    for p, row, rule in pairs.itertuples(index=False):
        by_account[int(p)][int(row)].append(int(rule))
        by_user[int(row)].add(int(p))
    proposed = []
    for p in sorted(by_account, key=lambda p: keys[p]):
        candidates = by_account[p]
        sure = {row for row, hit in candidates.items() if any(rules.match[r].level == "link" for r in hit)}
        if len(sure) == 1 and len(candidates) == 1 and by_user[next(iter(sure))] == {p} and p not in out.decided:
            out.links[p] = next(iter(sure))
            continue
        out.waiting.add(p)
        proposed.append(p)
    if proposed:  # their values and their candidates', as plain dicts once (not row by row from the frames)
        mine = _shown(accounts.loc[proposed], ("account", "ad_username", "domain", "external_id"))
        theirs = _shown(existing.loc[sorted({r for p in proposed for r in by_account[p]})], ("id",))
        names = dict(zip(accounts.index, accounts["account"].astype(str)))
        out.cases = [_case(rules, keys[p], mine[p], by_account[p], theirs, by_user, names) for p in proposed]
    return out


def _shown(frame: pd.DataFrame, extra: tuple[str, ...]) -> dict[int, dict]:
    """Row label → the values a case shows (text, None for blanks)."""
    columns = [c for c in (*extra, *SHOWN) if c in frame.columns]
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return {label: {c: (v if v is None or c == "id" else str(v)) for c, v in row.items()}
            for label, row in values.to_dict("index").items()}


def _case(rules: Rules, key: str, account: dict, candidates: dict[int, list[int]], users: dict[int, dict],
          by_user: dict[int, set[int]], names: dict[int, str]) -> dict:
    listed = []
    for row, hit in sorted(candidates.items(), key=lambda item: int(users[item[0]]["id"])):
        others = sorted(names[o] for o in by_user[row] if names[o] != account["account"])
        listed.append({**users[row], "id": int(users[row]["id"]),
                       "by": [rules.match[r].describe() for r in hit], "also": others})
    own = {c: account.get(c) for c in SHOWN if c in account}
    return {"key": key, "kind": MATCH, **{c: account.get(c) for c in ("account", "ad_username", "domain", "external_id")},
            "username": account.get("username"), "field": None, "value": None, "holder_id": None, "holder": None,
            "detail": json.dumps({"account": own, "candidates": listed}, default=str)}
