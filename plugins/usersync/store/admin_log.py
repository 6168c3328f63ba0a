"""The console's audit trail (``admin_log``): who did what to a source's configuration, and when.

A go-live keeps the text it replaced, so the previous rules are never lost even where the rules folder is not in
git. Read by the sources page (each source's last Test) and the editor (its recent changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, desc, func, insert, select

from usersync.core.users_table import admin_log
from usersync.store.schema_version import ensure_schema
from usersync.store.source_health import utc


@dataclass(frozen=True)
class AdminAction:
    """One thing an administrator did (``detail`` is JSON-able and never holds a secret)."""

    at: datetime
    by: str
    source: str
    action: str
    summary: str
    ok: bool = True
    detail: dict[str, Any] | None = None
    before_text: str | None = None
    after_text: str | None = None


#: the columns lists show: all but the rules texts, which can be long
_LISTED = [c for c in admin_log.c if c.name not in ("before_text", "after_text")]


def record(engine: Engine, one: AdminAction) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(admin_log).values(
            at=one.at, by=one.by[:256], source=one.source, action=one.action, ok=one.ok, summary=one.summary,
            detail=json.dumps(one.detail, sort_keys=True) if one.detail is not None else None,
            before_text=one.before_text, after_text=one.after_text))


def recent(engine: Engine, source: str, limit: int = 20) -> list[dict[str, Any]]:
    """``source``'s latest actions, newest first (without the texts)."""
    ensure_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(*_LISTED).where(admin_log.c.source == source)
                            .order_by(desc(admin_log.c.at), desc(admin_log.c.id)).limit(limit)).mappings().all()
    return [_row(r) for r in rows]


def last_of(engine: Engine, action: str, sources: list[str]) -> dict[str, dict[str, Any]]:
    """Each source's latest ``action`` (its last Test, say), by source: one query."""
    ensure_schema(engine)
    newest = (select(admin_log.c.source, func.max(admin_log.c.id).label("id"))
              .where(admin_log.c.action == action, admin_log.c.source.in_(sources))
              .group_by(admin_log.c.source).subquery())
    with engine.connect() as conn:
        rows = conn.execute(select(*_LISTED).join(newest, newest.c.id == admin_log.c.id)).mappings().all()
    return {r["source"]: _row(r) for r in rows}


def _row(r) -> dict[str, Any]:
    out = dict(r)
    out["at"] = utc(out["at"])
    out["detail"] = json.loads(out["detail"]) if out.get("detail") else None
    return out
