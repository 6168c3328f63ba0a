"""Each source's health between runs (``source_health``): its last applied full read, its last success and its
run of failures (``usersync.plan.health`` decides the quarantine; this module stores it).

The read and the success are written by apply inside its transaction: they move exactly when the run's changes
land — never on a dry run, a blocked or a failed run. The change guard compares the next full read with the read
kept here. A failure is written by the failed run's report, in a transaction of its own (nothing else of the run
is written).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from usersync.core.users_table import source_health
from usersync.plan.change_guard import LastRead
from usersync.plan.health import OK, QUARANTINED, Failed, Health, after_failure
from usersync.store.schema_version import ensure_schema


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def load(engine: Engine, source: str) -> dict[str, Any] | None:
    """``source``'s health row (None before its first recorded run), times in UTC."""
    ensure_schema(engine)
    with engine.connect() as conn:
        row = conn.execute(select(source_health).where(source_health.c.source == source)).mappings().first()
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in row.items()} if row else None


def load_all(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every source's health row, by source."""
    ensure_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(source_health)).mappings().all()
    return {r["source"]: {k: utc(v) if isinstance(v, datetime) else v for k, v in r.items()} for r in rows}


def last_read(engine: Engine, source: str) -> LastRead | None:
    """The source's last applied full read; None before the first."""
    row = load(engine, source)
    if not row or row["last_read"] is None:
        return None
    at = row["last_read_at"]
    return LastRead(count=row["last_read"], at=at.isoformat(timespec="minutes") if at else None,
                    run_id=row["last_read_run_id"], where=json.loads(row["last_read_where"] or "{}"))


def record_success(conn: Connection, source: str, run_id: str, now: datetime, read: LastRead | None) -> None:
    """A run applied (inside its transaction): its full read, if it read in full, is the one the next is compared
    with; any run of failures and the quarantine end."""
    values: dict[str, Any] = {"last_success_at": now, "last_success_run_id": run_id, "state": OK, "failures": 0,
                              "failure_kind": None, "reason": None, "first_failure_at": None,
                              "quarantined_at": None, "next_try_at": None, "alarmed_reason": None}
    if read is not None:
        values.update(last_read=read.count, last_read_where=json.dumps(read.where, sort_keys=True),
                      last_read_at=now, last_read_run_id=run_id)
    upsert(conn, source, values, now)


def upsert(conn: Connection, source: str, values: dict[str, Any], now: datetime) -> None:
    """Change ``source``'s row (created on first use) inside the caller's transaction."""
    values = {**values, "updated_at": now}
    done = conn.execute(update(source_health).where(source_health.c.source == source).values(**values))
    if not done.rowcount:
        conn.execute(insert(source_health).values(source=source, **values))


def health_of(row: dict[str, Any] | None) -> Health:
    """The failure state of a health row (an empty one before the first)."""
    if not row:
        return Health()
    values: dict[str, Any] = {f: utc(row[f]) if isinstance(row[f], datetime) else row[f] for f in HEALTH_FIELDS}
    return Health(**values)


HEALTH_FIELDS = tuple(Health.__dataclass_fields__)


def record_failure(engine: Engine, source: str, failure_type: str, reason: str, at: datetime, run_id: str,
                   now: datetime) -> Failed:
    """A failed run of ``source`` (due at ``at``): its health after it, written in one transaction (the row locked
    against a concurrent run's report), and whether its alarm is due."""
    ensure_schema(engine)
    with engine.begin() as conn:
        row = conn.execute(select(source_health).where(source_health.c.source == source)
                           .with_for_update()).mappings().first()
        failed = after_failure(health_of(dict(row) if row else None), failure_type, reason, at, run_id)
        upsert(conn, source, {f: getattr(failed.health, f) for f in HEALTH_FIELDS}, now)
    return failed


def release(engine: Engine, source: str, by: str, now: datetime) -> bool:
    """An admin ends ``source``'s quarantine: its next scheduled run tries the source again (False: it was not in
    quarantine)."""
    ensure_schema(engine)
    with engine.begin() as conn:
        done = conn.execute(update(source_health)
                            .where(source_health.c.source == source, source_health.c.state == QUARANTINED)
                            .values(state=OK, failures=0, failure_kind=None, reason=None, first_failure_at=None,
                                    quarantined_at=None, next_try_at=None, alarmed_reason=None,
                                    released_by=by, released_at=now, updated_at=now))
    return bool(done.rowcount)
