"""Apply on real PostgreSQL and SQLite: the change set lands whole, set-based, or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from tests.support.helpers import plan, record, rules
from tests.support.small_runs import apply_changes
from usersync.core.users_table import users
from usersync.plan.change_tables import ChangeTables
from usersync.plan.changes import Delete
from usersync.store.apply import apply_tables, load_users
from usersync.store.recheck import fingerprint


def _table(engine):
    with engine.connect() as c:
        return {r.username: dict(r._mapping) for r in c.execute(select(users))}


def _sync(engine, r, records):
    p = plan(r, records, load_users(engine))
    return p, apply_changes(engine, p)


def test_insert_update_delete_land_and_a_second_run_writes_nothing(engine):
    r = rules()
    _p, written = _sync(engine, r, [record(i) for i in range(5)])
    assert written == {"inserted": 5, "updated": 0, "deleted": 0, "disabled": 0}
    before = _table(engine)
    _p, written = _sync(engine, r, [record(0, givenName="Zoe"), *[record(i) for i in (1, 2, 3)], record(9)])
    assert written == {"inserted": 1, "updated": 1, "deleted": 1, "disabled": 0}
    after = _table(engine)
    assert set(after) == {"user000000", "user000001", "user000002", "user000003", "user000009"}
    assert after["user000000"]["first_name"] == "Zoe"
    assert after["user000000"]["updated_at"] >= before["user000000"]["updated_at"]
    assert after["user000001"] == before["user000001"]
    _p, written = _sync(engine, r, [record(0, givenName="Zoe"), *[record(i) for i in (1, 2, 3)], record(9)])
    assert written == {"inserted": 0, "updated": 0, "deleted": 0, "disabled": 0}


def test_a_planned_delete_of_a_row_gone_meanwhile_is_a_conflict_and_the_rest_applies(engine):
    r = rules()
    _sync(engine, r, [record(i) for i in range(3)])
    p = plan(r, [record(0, givenName="Changed"), record(1), record(7)], load_users(engine))
    assert p.inserts and p.updates and p.deletes
    # the table changed behind the diff's back: this delete no longer matches a row of this source
    p.deletes.append(Delete(id=999_999, username="ghost", ad_username="ghost", domain="EXAMPLE"))
    tables = ChangeTables.from_changeset(p)
    written = apply_tables(engine, tables)
    assert written == {"inserted": 1, "updated": 1, "deleted": 1, "disabled": 0}
    (conflict,) = tables.conflicts
    assert conflict.username == "ghost" and "delete not applied: the user was deleted" in conflict.reason
    assert set(_table(engine)) == {"user000000", "user000001", "user000007"}


def test_a_database_error_rolls_back_everything(engine):
    r = rules()
    _sync(engine, r, [record(0)])
    before = _table(engine)
    p = plan(r, [record(0, givenName="X"), record(1)], load_users(engine))
    p.inserts[0].row["username"] = None  # the database refuses it (NOT NULL), after the update was written
    with pytest.raises(Exception, match="(?i)not[- ]null"):
        apply_changes(engine, p)
    assert _table(engine) == before


def test_a_username_taken_since_the_diff_is_left_out_with_the_reason(engine):
    r = rules()
    _sync(engine, r, [record(0)])
    p = plan(r, [record(0, givenName="X"), record(1)], load_users(engine))
    p.inserts[0].row["username"] = "USER000000"  # as if another source had taken it after this diff
    tables = ChangeTables.from_changeset(p)
    assert apply_tables(engine, tables) == {"inserted": 0, "updated": 1, "deleted": 0, "disabled": 0}
    (conflict,) = tables.conflicts
    assert conflict.username == "USER000000" and "username user000000 was taken by user 'user000000'" in conflict.reason


def test_statements_do_not_grow_with_the_number_of_users(engine):
    """Set-based: the same few statements for 60 or 600 changed users (no per-user round trips)."""
    r = rules()

    def statements_for(n: int) -> int:
        with engine.begin() as c:
            c.execute(users.delete())
        _sync(engine, r, [record(i) for i in range(n)])
        changed = [record(i, givenName="Changed") for i in range(n // 3)]
        kept = [record(i) for i in range(n // 3, 2 * n // 3)]
        new = [record(i) for i in range(n, n + n // 3)]
        with engine.connect() as c:
            seen = fingerprint(c)  # as the diff step records it: nobody wrote since, no claim re-check needed
        p = plan(r, changed + kept + new, load_users(engine))
        assert (len(p.inserts), len(p.updates), len(p.deletes)) == (n // 3, n // 3, n - 2 * (n // 3))
        tables = ChangeTables.from_changeset(p)
        tables.seen = seen
        calls = []
        listener = lambda *a, **k: calls.append(1)  # noqa: E731
        event.listen(engine, "before_execute", listener)
        try:
            apply_tables(engine, tables)
        finally:
            event.remove(engine, "before_execute", listener)
        return len(calls)

    small, large = statements_for(60), statements_for(600)
    # schema version, lock (PostgreSQL), fingerprint, the deletes' row check, delete, update, insert; the per-user
    # log's: the updated users' names, the inserted users' records, the open repeating records, the other records
    assert small == large <= 11
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(users)).scalar() == 600 - 200 + 200


def test_disables_are_applied_set_based_and_only_to_this_sources_users(engine):
    from tests.support.rules import ad_rules
    from usersync.rules import parse_rules

    data = ad_rules()
    data["safety"] = {"deletion": "disable"}
    r = parse_rules(data)
    _sync(engine, r, [record(i) for i in range(4)])
    p, written = _sync(engine, r, [record(0), record(1)])
    assert written["disabled"] == 2 and written["deleted"] == 0
    table = _table(engine)
    assert len(table) == 4
    assert [table[u]["enabled"] for u in ("user000002", "user000003")] == [False, False]
    assert table["user000002"]["disabled_by_sync"] is True and table["user000000"]["disabled_by_sync"] is False
