"""What write-back would write: for each user this source owns, each attribute whose directory value (as the
run read it) differs from the value the users table gives it.

Only users owned by this source are written — local users and other sources' users have no entry here to write
— and only those whose account the run read (a user whose account is gone has nothing to write to). A user is
found from the account as apply finds it: by anchor, else by AD username + Domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from usersync.plan.mapping import account_identity
from usersync.rules import Rules
from usersync.sources.planned_write import Write
from usersync.sources.record import SourceRecord


def _blank(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def plan_writes(rules: Rules, owned: Iterable[dict[str, Any]], records: Iterable[SourceRecord],
                target_of: Callable[[SourceRecord], str]) -> list[Write]:
    """The writes that bring the directory in line with ``owned`` (this source's users, as dicts of the users
    table's columns), for the accounts in ``records``; ``target_of`` says where the writer writes a record."""
    spec = rules.write_back
    if spec is None:
        return []
    by_anchor: dict[str, dict[str, Any]] = {}
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for user in owned:
        if user.get("external_id"):
            by_anchor[str(user["external_id"]).lower()] = user
        if user.get("ad_username"):
            by_key[(str(user["ad_username"]).lower(), str(user.get("domain") or "").lower())] = user
    out: list[Write] = []
    for record in records:
        if record.problem:
            continue
        ad_username, domain, anchor = account_identity(rules, record)
        row: dict[str, Any] | None = by_anchor.get(anchor.lower()) if anchor else None
        if row is None and ad_username:
            row = by_key.get((ad_username.lower(), (domain or "").lower()))
        if row is None:
            continue  # not (yet) a user of this source: nothing of ours to write
        for attribute, rule in spec.attributes.items():
            new, old = rule.value(row.get(rule.field)), _blank(record.get(attribute))
            if new == old or (new is None and not rule.clear_when_empty):
                continue
            out.append(Write(int(row["id"]), str(row["username"]), record.account, target_of(record), attribute,
                             old, new))
    return out
