"""Keep as a local user: a synced user loses its AD username, Domain and owner (so no source touches it again)
and keeps every other value — voicemail, numbers, licences, history.

The write itself is a change set of detaches applied like any other (one transaction, the optimistic check);
this module finds the users an admin names, and turns them into that change set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, func, or_, select

from usersync.core.errors import UsersyncError
from usersync.core.users_table import users
from usersync.plan.change_tables import LIFECYCLE_SCHEMA, ChangeTables
from usersync.store.schema_version import ensure_schema


class DetachError(UsersyncError, ValueError):
    """A user to detach could not be found, or is not a synced user; nothing was written."""


@dataclass
class Found:
    """The users ``find_synced`` found, by owning source, and what named nobody."""

    by_source: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # already local users: nothing to detach


def find_synced(engine: Engine, names: Iterable[str], source: str | None = None) -> Found:
    """The users ``names`` name — by username, AD username, ``DOMAIN\\AD username`` or anchor, case-insensitively —
    grouped by the source that owns them (only ``source``'s, when given)."""
    ensure_schema(engine)
    found = Found()
    with engine.connect() as conn:
        for name in dict.fromkeys(n.strip() for n in names if n.strip()):
            domain, _sep, account = name.rpartition("\\")
            tests = [func.lower(users.c.username) == name.lower(), func.lower(users.c.external_id) == name.lower()]
            tests.append(func.lower(users.c.ad_username) == account.lower() if not domain else
                         (func.lower(users.c.ad_username) == account.lower()) & (func.lower(users.c.domain) == domain.lower()))
            rows = [dict(r) for r in conn.execute(select(users).where(or_(*tests))).mappings()]
            if source is not None:
                rows = [r for r in rows if r["source"] == source or not r["source"]]
            synced = [r for r in rows if r["source"] and r["ad_username"]]
            if len(synced) > 1:
                raise DetachError(f"{name!r} names {len(synced)} users ({', '.join(r['username'] for r in synced)}); "
                                  "name one by its username; nothing was detached")
            if synced:
                found.by_source.setdefault(synced[0]["source"], []).append(synced[0])
            elif rows:
                found.local.append(name)
            else:
                found.unknown.append(name)
    return found


def detach_plan(source: str, rows: list[dict[str, Any]], reason: str, as_of: datetime | None = None) -> ChangeTables:
    """A change set that only detaches ``rows`` (users of ``source``)."""
    table = pa.Table.from_pylist([{"id": r["id"], "username": r["username"], "ad_username": r["ad_username"],
                                   "domain": r["domain"], "left_at": r.get("left_at"), "reason": reason}
                                  for r in rows], schema=LIFECYCLE_SCHEMA)
    return ChangeTables(source=source, detaches=table, as_of=(as_of or datetime.now(UTC)).isoformat())
