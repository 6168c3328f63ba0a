"""The leavers' lifecycle as a property (hypothesis, 100 generated stories) of diff + apply on a real SQLite table.

A story is a sequence of steps — an account leaves, comes back, time passes, the application protects a user,
an account moves to the Board (protected by a ``protect:`` rule) — with a sync after each step, full or delta.
After every sync the table must be exactly what the lifecycle says: nobody deleted before ``delete_after_days``
of continuous absence, everybody unprotected deleted once they are up, protected users never deleted or
disabled, and an account that comes back within the grace has its row id and its application data.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, select, update

from tests.support.rules import ad_rules
from usersync.core.users_table import users
from usersync.plan.diff import diff_frames
from usersync.plan.mapping import map_records
from usersync.plan.tables import mapped_batch, to_frame, value_fields_of
from usersync.rules import parse_rules
from usersync.sources.record import SourceRecord
from usersync.store.apply import apply_tables
from usersync.store.schema_version import ensure_schema
from usersync.store.users_read import users_table

pytestmark = pytest.mark.properties
STORIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACCOUNTS = 5
START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
_engine = None


def engine():
    global _engine
    if _engine is None:
        _engine = create_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'users.db'}")
        ensure_schema(_engine)
    return _engine


def _rules(days: int):
    data = ad_rules()
    data["safety"] = {"deletion": "disable", "delete_after_days": days}
    data["protect"] = [{"field": "department", "in": ["Board"]}]
    return parse_rules(data)


def _record(i: int, board: bool) -> SourceRecord:
    return SourceRecord(f"CN=a{i}", {"sAMAccountName": f"a{i}", "objectGUID": f"{{g-{i}}}", "givenName": f"A{i}",
                                     "department": "Board" if board else "Staff", "userAccountControl": "512"})


def _table() -> dict[str, dict]:
    with engine().connect() as conn:
        return {r.ad_username: dict(r._mapping) for r in conn.execute(select(users)) if r.ad_username}


def _sync(rules, records: list[SourceRecord], at: datetime, removed: set[str] | None):
    mapped, skipped = map_records(rules, records)
    frame = to_frame(pa.Table.from_batches([mapped_batch(mapped, value_fields_of(rules))]))
    plan = diff_frames(rules, frame, to_frame(users_table(engine())), skipped, read=len(records),
                       removed=removed, as_of=at)
    apply_tables(engine(), plan, now=at)
    assert plan.conflicts == []
    return plan


steps = st.lists(st.one_of(
    st.tuples(st.just("leave"), st.integers(0, ACCOUNTS - 1)),
    st.tuples(st.just("return"), st.integers(0, ACCOUNTS - 1)),
    st.tuples(st.just("pass"), st.integers(1, 80)),  # hours
    st.tuples(st.just("protect"), st.integers(0, ACCOUNTS - 1)),
    st.tuples(st.just("board"), st.integers(0, ACCOUNTS - 1)),
), max_size=25)


@STORIES
@given(st.integers(1, 4), steps, st.booleans())
def test_no_early_deletion_no_protected_loss_and_returns_keep_their_row(days, story, delta):
    rules = _rules(days)
    with engine().begin() as conn:
        conn.execute(delete(users))
    present, board, at = set(range(ACCOUNTS)), set(), START
    _sync(rules, [_record(i, False) for i in sorted(present)], at, None)
    # the application's own data on each user: it must survive a leave and a return
    with engine().begin() as conn:
        for name, row in _table().items():
            conn.execute(update(users).where(users.c.id == row["id"]).values(personal_address=f"home of {name}",
                                                                             voicemail_enabled=True))
    # the model: per account its user's row id (None once deleted), since when it is disabled, whether it has data
    row_id = {name: row["id"] for name, row in _table().items()}
    disabled_at: dict[str, datetime | None] = dict.fromkeys(row_id)
    has_data = set(row_id)
    flagged: set[str] = set()  # sync_protected set by the application
    table_board: set[str] = set()  # whose users-table department is Board (what the protect rule reads)
    previous = set(present)

    for kind, value in story:
        name = f"a{value}"
        if kind == "leave":
            present.discard(value)
        elif kind == "return":
            present.add(value)
        elif kind == "pass":
            at += timedelta(hours=value)
        elif kind == "protect" and row_id.get(name) is not None:
            with engine().begin() as conn:
                conn.execute(update(users).where(users.c.id == row_id[name]).values(sync_protected=True))
            flagged.add(name)
        elif kind == "board":
            board.add(value)
        if not present:
            continue  # an empty source is refused before the diff ("everyone left" is never believed)
        removed = {f"{{g-{i}}}" for i in previous - present} if delta else None
        _sync(rules, [_record(i, i in board) for i in sorted(present)], at, removed)
        previous = set(present)
        table = _table()

        for i in range(ACCOUNTS):
            n = f"a{i}"
            if i in present:
                row = table[n]
                if row_id.get(n) is None:  # back after its deletion: a new user
                    row_id[n] = row["id"]
                    has_data.discard(n)
                assert row["id"] == row_id[n], (n, story)
                assert row["enabled"] is True and row["disabled_by_sync"] is False and row["left_at"] is None
                if n in has_data:
                    assert row["personal_address"] == f"home of {n}" and row["voicemail_enabled"] is True
                disabled_at[n] = None
                table_board.discard(n)
                if i in board:
                    table_board.add(n)
                continue
            if row_id.get(n) is None:
                assert n not in table
                continue
            protected = n in flagged or n in table_board
            if disabled_at[n] is None and not protected:
                disabled_at[n] = at  # first found gone: disabled now
            since = disabled_at[n]
            if since is not None and not protected and at - since >= timedelta(days=days):
                assert n not in table, (n, since, at, story)
                row_id[n] = None
                continue
            row = table.get(n)  # within the grace, or protected: the same user, its data intact
            assert row is not None and row["id"] == row_id[n], (n, since, at, story)
            assert row["disabled_by_sync"] is (since is not None) and row["enabled"] is (since is None), (n, story)
            if since is not None:
                assert row["left_at"].replace(tzinfo=UTC) == since
            if n in has_data:
                assert row["personal_address"] == f"home of {n}" and row["voicemail_enabled"] is True
