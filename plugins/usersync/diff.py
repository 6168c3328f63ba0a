"""Mapped source users + current users table → a ``ChangeSet``.

Matching is on (AD username, Domain), case-insensitively. The diff is where the table's business rules are
kept: local users (blank key) are never touched, a source only updates or deletes users it owns, usernames
and phone numbers stay unique (a clashing source user is skipped, nobody else is affected), and an account
that exists in the source — even one skipped for bad data — is never deleted.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Hashable, Iterable, Mapping

from usersync.changes import ChangeSet, Delete, Disable, Insert, Skipped, Update, match_key
from usersync.fields import BOOL_FIELDS, FIELDS, NUMBER_FIELDS, Policy
from usersync.mapping import MappedUser
from usersync.rules import Rules

Row = Mapping[str, Any]


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _same(old: Any, new: Any) -> bool:
    return (_blank(old) and _blank(new)) or old == new


def _is_keyed(row: Row) -> bool:
    return not _blank(row.get("ad_username")) and not _blank(row.get("domain"))


def _claims(row: Row) -> set[tuple[str, str]]:
    """What a row holds that no other user may hold: its username and its numbers."""
    claims = {("username", str(row["username"]).casefold())} if not _blank(row.get("username")) else set()
    claims.update(("number", str(row[c])) for c in NUMBER_FIELDS if not _blank(row.get(c)))
    return claims


def _final(row: Row | None, change: dict) -> Row:
    """The row as it will be after the change: an insert's row, or the old row with the updates applied."""
    return change if row is None else {**row, **{c: new for c, (_old, new) in change.items()}}


def _describe(claim: tuple[str, str], holder: Row | None) -> str:
    who = f"user {holder['username']!r}" if holder else "another account of this run"
    what = "username" if claim[0] == "username" else "number"
    return f"{what} {claim[1]} is already used by {who}"


def insert_row(rules: Rules, user: MappedUser) -> dict[str, Any]:
    """The full row for a new user: keep fields blank (false for flags), the rest from the rules."""
    row: dict[str, Any] = {}
    for field in FIELDS:
        rule = rules.fields.get(field)
        value = user.values.get(field) if rule and rule.policy is not Policy.KEEP else None
        row[field] = (bool(value) if value is not None else False) if field in BOOL_FIELDS else value
    row.update(ad_username=user.ad_username, domain=user.domain, source=rules.source.name, external_id=user.external_id)
    return row


def update_changes(rules: Rules, user: MappedUser, row: Row) -> dict[str, tuple[Any, Any]]:
    """Only the columns whose value the rules say to write and that differ: column → (old, new)."""
    changes: dict[str, tuple[Any, Any]] = {}
    for field, rule in rules.fields.items():
        if field not in user.values:
            continue
        old, new = row.get(field), user.values[field]
        if rule.policy in (Policy.IMPORT, Policy.PREFIX):
            if not _same(old, new):
                changes[field] = (old, new)
        elif rule.policy is Policy.DEFAULT_IF_EMPTY and _blank(old) and not _blank(new):
            changes[field] = (old, new)
    for column, new in (("ad_username", user.ad_username), ("domain", user.domain), ("source", rules.source.name)):
        if row.get(column) != new:  # case-only renames in the key are written too
            changes[column] = (row.get(column), new)
    if user.external_id and row.get("external_id") != user.external_id:
        changes["external_id"] = (row.get("external_id"), user.external_id)
    if row.get("disabled_by_sync"):  # the account is back: undo what deletion policy 'disable' did
        changes["disabled_by_sync"] = (True, False)
        if "enabled" not in changes and rules.fields["enabled"].policy is not Policy.IMPORT:
            changes["enabled"] = (row.get("enabled"), True)
    return changes


def compute_diff(
    rules: Rules,
    mapped: Iterable[MappedUser],
    existing: Iterable[Row],
    skipped: Iterable[Skipped] = (),
    read: int = 0,
) -> ChangeSet:
    source = rules.source.name
    plan = ChangeSet(source=source, read=read, skipped=list(skipped))
    rows = list(existing)
    by_key: dict[tuple[str, str], Row] = {match_key(r["ad_username"], r["domain"]): r for r in rows if _is_keyed(r)}

    # Every key the source holds, mapped or not: none of these users may be deleted.
    present: set[tuple[str, str]] = {
        match_key(s.ad_username, s.domain) for s in plan.skipped if s.ad_username and s.domain
    }
    groups: dict[tuple[str, str], list[MappedUser]] = defaultdict(list)
    for user in mapped:
        groups[match_key(user.ad_username, user.domain)].append(user)
    present.update(groups)

    candidates: list[MappedUser] = []
    for key in sorted(groups):
        same = groups[key]
        if len(same) > 1:
            accounts = ", ".join(u.account for u in same)
            plan.skipped.extend(
                Skipped(u.account, f"duplicate key {u.domain}\\{u.ad_username} in the source ({accounts})", u.ad_username, u.domain)
                for u in same
            )
            continue
        candidates.append(same[0])

    policy = rules.safety.deletion
    for row in rows:
        if row.get("source") != source or not _is_keyed(row):
            continue
        plan.owned += 1
        if match_key(row["ad_username"], row["domain"]) in present:
            continue
        if policy == "delete":
            plan.deletes.append(Delete(row["id"], row["username"], row["ad_username"], row["domain"]))
        elif policy == "disable" and not row.get("disabled_by_sync"):
            plan.disables.append(Disable(row["id"], row["username"], row["ad_username"], row["domain"]))
        else:
            plan.kept += 1
    deleted = {d.id for d in plan.deletes}

    # Plan inserts and updates, then admit them only while their username and numbers stay unique.
    planned: list[tuple[Hashable, MappedUser, Row | None, dict]] = []
    for user in candidates:
        row = by_key.get(match_key(user.ad_username, user.domain))
        if row is None:
            planned.append((("new", *match_key(user.ad_username, user.domain)), user, None, insert_row(rules, user)))
            continue
        owner = row.get("source")
        if not _blank(owner) and owner != source:
            plan.skipped.append(Skipped(user.account, f"user {row['username']!r} is owned by source {owner!r}", user.ad_username, user.domain))
            continue
        changes = update_changes(rules, user, row)
        if not changes:
            plan.unchanged += 1
            continue
        planned.append((row["id"], user, row, changes))

    holders: dict[tuple[str, str], set[Hashable]] = defaultdict(set)
    row_of: dict[Hashable, Row] = {}
    for row in rows:
        if row["id"] not in deleted:
            row_of[row["id"]] = row
            for claim in _claims(row):
                holders[claim].add(row["id"])

    pending = planned
    progress = True
    while pending and progress:
        progress, waiting = False, []
        for item in pending:
            holder, user, row, change = item
            wanted = _claims(_final(row, change))
            if any(holders[c] - {holder} for c in wanted):
                waiting.append(item)
                continue
            for claim in _claims(row) if row is not None else ():
                holders[claim].discard(holder)
            for claim in wanted:
                holders[claim].add(holder)
            if row is None:
                plan.inserts.append(Insert(change))
            else:
                plan.updates.append(Update(row["id"], row["username"], change))
            progress = True
        pending = waiting

    for holder, user, row, change in pending:
        clash = next(c for c in sorted(_claims(_final(row, change))) if holders[c] - {holder})
        other = next(iter(holders[clash] - {holder}))
        plan.skipped.append(Skipped(user.account, _describe(clash, row_of.get(other)), user.ad_username, user.domain))
    return plan
