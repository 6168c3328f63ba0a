"""The steps of one sync run as plain functions over JSON-able data, so any orchestrator can chain them.

check → extract → map → diff. Each step takes what the previous one returned; the Airflow DAG passes these
values by XCom, the tests call them directly. Only ``check`` and ``extract`` know which kind of source they
read. Writing is ``usersync.apply.apply_changes``, after the ``usersync.safety`` check.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from usersync.apply import load_users
from usersync.changes import Skipped
from usersync.diff import compute_diff
from usersync.mapping import MappedUser, SourceRecord, map_records
from usersync.rules import Rules
from usersync.sources.base import Source
from usersync.sources.errors import EmptySource

log = logging.getLogger(__name__)


def check_step(source: Source) -> dict[str, Any]:
    info = source.check()
    for warning in info.get("warnings", []):
        log.warning("%s", warning)
    return info


def extract_step(source: Source, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Read every record; an empty read is an error, never "everyone left"."""
    records = [r.to_json() for r in source.records(info)]
    log.info("extracted %d records from %s", len(records), info.get("url"))
    if not records:
        where = ", ".join(f"{k} {v}" for k, v in info.items() if k in ("base", "filter", "table", "file"))
        raise EmptySource(
            f"{info.get('url')} returned no users ({where}); refusing to treat that as 'everyone left' "
            "(wrong object path, filter or query? lost read permission? empty file?)"
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
