"""The steps of one sync run as plain functions over JSON-able data, so any orchestrator can chain them.

extract → map → diff → apply. Each step takes what the previous one returned; the Airflow DAG passes these
values by XCom, the tests call them directly.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from usersync.apply import apply_changes, load_users
from usersync.changes import ChangeSet, Skipped
from usersync.diff import compute_diff
from usersync.mapping import MappedUser, SourceRecord, map_records
from usersync.rules import Rules
from usersync.sources.errors import EmptySource
from usersync.sources.ldap import LdapDirectory

log = logging.getLogger(__name__)


def resolve_base(rules: Rules, directory: LdapDirectory) -> str:
    """The search base: the rules' object path, or CN=Users of the default naming context when blank."""
    return rules.source.object_path.strip() or directory.default_users_base()


def extract_ldap(rules: Rules, directory: LdapDirectory, base: str) -> list[dict[str, Any]]:
    """Read every matching entry (paged), only the attributes the rules use."""
    src = rules.source
    records = [
        r.to_json()
        for r in directory.search(base, src.filter, rules.source_attributes(), src.page_size, src.scope)
    ]
    log.info("extracted %d entries from %s (base %s, filter %s)", len(records), directory.url, base, src.filter)
    if not records:
        raise EmptySource(
            f"{directory.url} returned no entries under {base!r} with filter {src.filter}; refusing to treat "
            "that as 'everyone left' (wrong object path or filter? lost read permission?)"
        )
    return records


def map_step(rules: Rules, records: list[dict[str, Any]]) -> dict[str, Any]:
    mapped, skipped = map_records(rules, (SourceRecord.from_json(r) for r in records))
    log.info("mapped %d of %d records (%d skipped)", len(mapped), len(records), len(skipped))
    return {
        "read": len(records),
        "users": [m.to_json() for m in mapped],
        "skipped": [s.__dict__ for s in skipped],
    }


def diff_step(rules: Rules, mapped: dict[str, Any], engine: Engine) -> dict[str, Any]:
    plan = compute_diff(
        rules,
        [MappedUser.from_json(u) for u in mapped["users"]],
        load_users(engine),
        [Skipped(**s) for s in mapped["skipped"]],
        read=mapped["read"],
    )
    log.info("plan for %s: %s", rules.source.name, plan.counts())
    return plan.to_json()


def apply_step(plan_json: dict[str, Any], engine: Engine) -> dict[str, int]:
    plan = ChangeSet.from_json(plan_json)
    return apply_changes(engine, plan)
