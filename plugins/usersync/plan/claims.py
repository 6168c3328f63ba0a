"""Uniqueness of usernames and numbers: which planned inserts and updates may take what they claim.

A *claim* is what a row holds that no other user may hold: its username (case-insensitive), its sync key
(AD username + Domain, case-insensitive: a renamed account may not take another user's) and each of its
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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from usersync.plan.changes import SkipCode, claim_label
from usersync.plan.frames import casefold
from usersync.rules.fields import NUMBER_FIELDS


def claim_table(holder: np.ndarray, username: pd.Series, numbers: dict[str, pd.Series],
                only: pa.ChunkedArray | None = None, key: pd.Series | None = None) -> pa.Table:
    """Long Arrow table (holder, claim) of the non-blank username, sync key (already folded) and numbers.

    With ``only``, just the claims found in it (what the planned changes want). Arrow throughout: a million
    users' claims are a few compact string columns, concatenated without copying.
    """
    parts = []
    keys = (("k:", key),) if key is not None else ()
    for prefix, values in (("u:", casefold(username)), *keys, *(("n:", numbers[c]) for c in NUMBER_FIELDS)):
        claims = pc.binary_join_element_wise(prefix, pa.array(values.array, type=pa.string()), "")
        keep = pc.and_(pc.is_valid(claims), pc.not_equal(pc.utf8_length(claims), len(prefix)))
        if only is not None:
            keep = pc.and_(keep, pc.is_in(claims, value_set=only))
        keep = pc.fill_null(keep, False)
        parts.append(pa.table({"holder": pc.filter(pa.array(holder, pa.int64()), keep),
                               "claim": pc.filter(claims, keep)}))
    return pa.concat_tables(parts)


#: a claim's prefix → the skip code of its refusal
_CODES = {"u:": SkipCode.USERNAME_TAKEN, "k:": SkipCode.KEY_TAKEN, "n:": SkipCode.NUMBER_TAKEN}


def describe(claim: str, holder_username: str | None) -> tuple[str, str]:
    """A refused claim: its skip code and the reason in words."""
    who = f"user {holder_username!r}" if holder_username is not None else "another account of this run"
    return _CODES.get(claim[:2], SkipCode.NUMBER_TAKEN), f"{claim_label(claim)} is already used by {who}"


@dataclass
class Verdicts:
    order: np.ndarray  # positions of the admitted changes, in admission order (round, then position)
    clashes: dict[int, tuple[str, str]]  # position → why it was skipped: (code, reason)
    #: position → the claim refused and who holds it (a users.id; ``-(position + 1)`` for another planned insert)
    blocked: dict[int, tuple[str, int]]


def admit(positions: np.ndarray, holders: np.ndarray, wanted: pa.Table, released: pa.Table, held: pa.Table,
          username_of: dict[int, str]) -> Verdicts:
    """Decide every planned change.

    ``positions`` (candidate order) and ``holders`` (row id; a negative number for an insert) of the planned
    changes; ``wanted``: (holder = position, claim) of each final row; ``released``: (position, claim) each update
    gives up; ``held``: (holder, claim) of every user that stays in the table, as it is now.
    """
    holder_of = pd.Series(holders, index=positions)
    dependent = _sharing(wanted, released)
    clashes: dict[int, tuple[str, str]] = {}
    blocked: dict[int, tuple[str, int]] = {}

    # Independent changes: blocked exactly when another user holds one of their claims now.
    mine = pc.is_in(wanted["claim"], value_set=held["claim"])
    if dependent:
        mine = pc.and_(mine, pc.invert(pc.is_in(wanted["holder"], value_set=pa.array(sorted(dependent), pa.int64()))))
    alone = wanted.filter(pc.fill_null(mine, False)).to_pandas().rename(columns={"holder": "position"})
    against = alone.merge(held.filter(pc.is_in(held["claim"], value_set=pa.array(alone["claim"], pa.string())))
                          .to_pandas(), on="claim")
    against = against[against["holder"].to_numpy() != holder_of.reindex(against["position"]).to_numpy()]
    first = against.sort_values(["position", "claim", "holder"]).drop_duplicates("position")
    for position, claim, other in zip(first["position"], first["claim"], first["holder"]):
        clashes[int(position)] = describe(claim, username_of.get(int(other)))
        blocked[int(position)] = (claim, int(other))
    free = positions[~np.isin(positions, list(dependent)) & ~np.isin(positions, list(clashes))]
    rounds, order = [np.ones(len(free), int)], [free]

    # Changes that share claims: admitted round by round, as one by one.
    if dependent:
        holder_at = {int(p): int(holder_of[p]) for p in dependent}
        admitted = _rounds(sorted(holder_at), holder_at, wanted, released, held, username_of, clashes, blocked)
        rounds.append(np.array([r for r, _p in admitted], int))
        order.append(np.array([p for _r, p in admitted], int))
    rounds_all, order_all = np.concatenate(rounds), np.concatenate(order)
    return Verdicts(order_all[np.lexsort((order_all, rounds_all))], clashes, blocked)


def _sharing(wanted: pa.Table, released: pa.Table) -> set[int]:
    """Positions of the changes that touch a claim another change touches too.

    Claims become dictionary codes (one hash table of the distinct claims); (code, position) pairs are packed
    into one integer and made unique by sorting, so a million changes cost a few arrays of integers.
    """
    touched = pa.concat_tables([wanted, released])
    if not touched.num_rows:
        return set()
    codes = pc.dictionary_encode(touched["claim"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    positions = touched["holder"].to_numpy()
    pairs = np.unique((codes.astype(np.int64) << 32) | positions)  # positions are below 2**32
    pair_codes = pairs >> 32
    shared = np.bincount(pair_codes) > 1
    return set((pairs[shared[pair_codes]] & 0xFFFFFFFF).tolist())


def _rows_of(table: pa.Table, column: str, values: list) -> list[tuple]:
    """(holder, claim) rows of ``table`` whose ``column`` is one of ``values`` (few), as Python tuples."""
    part = table.filter(pc.is_in(table[column], value_set=pa.array(values, table.schema.field(column).type)))
    return list(zip(part["holder"].to_pylist(), part["claim"].to_pylist()))


def _rounds(order: list[int], holder_at: dict[int, Any], wanted: pa.Table, released: pa.Table,
            held: pa.Table, username_of: dict[int, str], clashes: dict[int, tuple[str, str]],
            blocked: dict[int, tuple[str, int]]) -> list[tuple[int, int]]:
    wants: dict[int, set[str]] = defaultdict(set)
    for p, c in _rows_of(wanted, "holder", order):
        wants[p].add(c)
    gives: dict[int, set[str]] = defaultdict(set)
    for p, c in _rows_of(released, "holder", order):
        gives[p].add(c)
    relevant = sorted(set().union(*wants.values(), *gives.values()))
    holders: dict[str, set[int]] = defaultdict(set)
    for h, c in _rows_of(held, "claim", relevant):
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
        blocked[p] = (clash, int(other))
    return admitted
