"""Uniqueness of usernames and numbers: which planned inserts and updates may take what they claim.

A *claim* is what a row holds that no other user may hold: its username (case-insensitive) and each of its
numbers. Planned changes are admitted in key order, round after round, each only while every claim of its
final row is free; a change that releases a claim (a user moving to another number) lets a later one take it.
What is still waiting when no round admits anything more is skipped with the clash.

Most changes touch claims no other planned change touches: their verdict depends only on the table as it
is, so it is taken for all of them at once in columns. Only the changes that share a claim with another
planned change go through the round-by-round admission, which keeps the result exactly that of admitting
every change one by one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np
import pandas as pd

from usersync.fields import NUMBER_FIELDS
from usersync.frames import casefold


def claim_frame(holder: pd.Series, username: pd.Series, numbers: dict[str, pd.Series]) -> pd.DataFrame:
    """Long table (holder, claim) of the non-blank username and numbers of each row."""
    parts = []
    for prefix, values in (("u:", casefold(username)), *(("n:", numbers[c]) for c in NUMBER_FIELDS)):
        keep = values.notna() & (values != "").fillna(False)
        parts.append(pd.DataFrame({"holder": holder[keep].to_numpy(), "claim": (prefix + values[keep]).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def describe(claim: str, holder_username: str | None) -> str:
    who = f"user {holder_username!r}" if holder_username is not None else "another account of this run"
    what = "username" if claim.startswith("u:") else "number"
    return f"{what} {claim[2:]} is already used by {who}"


@dataclass
class Verdicts:
    order: np.ndarray  # positions of the admitted changes, in admission order (round, then position)
    clashes: dict[int, str]  # position → the reason it was skipped


def admit(planned: pd.DataFrame, wanted: pd.DataFrame, released: pd.DataFrame, held: pd.DataFrame,
          username_of: dict[int, str]) -> Verdicts:
    """Decide every planned change.

    ``planned``: position (candidate order) and holder (row id; a negative number for an insert);
    ``wanted``: (position, claim) of each final row; ``released``: (position, claim) each update gives up;
    ``held``: (holder, claim) of every user that stays in the table, as it is now.
    """
    holder_at = dict(zip(planned["position"], planned["holder"]))
    touched = pd.concat([wanted, released], ignore_index=True).drop_duplicates()
    shared = touched.groupby("claim")["position"].transform("size") > 1
    dependent = set(touched.loc[shared, "position"])
    clashes: dict[int, str] = {}

    # Independent changes: blocked exactly when another user holds one of their claims now.
    alone = wanted[~wanted["position"].isin(dependent)]
    against = alone.merge(held[held["claim"].isin(alone["claim"])], on="claim")
    against = against[against["holder"] != against["position"].map(holder_at)]
    blocked = against.sort_values(["position", "claim", "holder"]).drop_duplicates("position")
    for position, claim, other in zip(blocked["position"], blocked["claim"], blocked["holder"]):
        clashes[int(position)] = describe(claim, username_of.get(int(other)))
    positions = planned["position"].to_numpy()
    free = positions[~np.isin(positions, list(dependent)) & ~np.isin(positions, list(clashes))]
    rounds, order = [np.ones(len(free), int)], [free]

    # Changes that share claims: admitted round by round, as one by one.
    if dependent:
        admitted = _rounds(sorted(dependent), holder_at, wanted, released, held, username_of, clashes)
        rounds.append(np.array([r for r, _p in admitted], int))
        order.append(np.array([p for _r, p in admitted], int))
    rounds_all, order_all = np.concatenate(rounds), np.concatenate(order)
    return Verdicts(order_all[np.lexsort((order_all, rounds_all))], clashes)


def _rounds(order: list[int], holder_at: dict[int, Any], wanted: pd.DataFrame, released: pd.DataFrame,
            held: pd.DataFrame, username_of: dict[int, str], clashes: dict[int, str]) -> list[tuple[int, int]]:
    members = set(order)
    wants: dict[int, set[str]] = defaultdict(set)
    for p, c in zip(wanted["position"], wanted["claim"]):
        if int(p) in members:
            wants[int(p)].add(c)
    gives: dict[int, set[str]] = defaultdict(set)
    for p, c in zip(released["position"], released["claim"]):
        if int(p) in members:
            gives[int(p)].add(c)
    relevant = set().union(*wants.values(), *gives.values())
    holders: dict[str, set[Hashable]] = defaultdict(set)
    for h, c in zip(held["holder"], held["claim"]):
        if c in relevant:
            holders[c].add(int(h))

    admitted: list[tuple[int, int]] = []
    pending, round_no, progress = list(order), 0, True
    while pending and progress:
        round_no += 1
        progress, waiting = False, []
        for p in pending:
            me = holder_at[p]
            if any(holders[c] - {me} for c in wants[p]):
                waiting.append(p)
                continue
            for c in gives[p]:
                holders[c].discard(me)
            for c in wants[p]:
                holders[c].add(me)
            admitted.append((round_no, p))
            progress = True
        pending = waiting
    for p in pending:
        me = holder_at[p]
        clash = next(c for c in sorted(wants[p]) if holders[c] - {me})
        other = min(holders[clash] - {me})
        clashes[p] = describe(clash, username_of.get(int(other)))
    return admitted
