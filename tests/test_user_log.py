"""The per-user log on real PostgreSQL and SQLite: written with the change, nothing for a no-op or a rolled-back
apply, repeating decisions kept as one record; undo of a run from it; the timeline search; retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.support.helpers import plan, record, rules
from tests.support.rules import ad_rules
from usersync.core.run_folder import RunFolder
from usersync.core.users_table import user_events, users
from usersync.plan.change_tables import ChangeTables
from usersync.plan.changes import SkipCode
from usersync.rules import parse_rules
from usersync.run.undo import UndoError, undo_step
from usersync.store.apply import apply_tables, load_users
from usersync.store.history import all_events, prune, replay, run_events, timeline
from usersync.store.user_log import RunStamp

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _sync(engine, r, records, run_id, at=None, full=True):
    tables = ChangeTables.from_changeset(plan(r, records, load_users(engine)))
    return apply_tables(engine, tables, now=at, stamp=RunStamp(run_id, rules_hash="h" * 64, full_read=full))


def _undo(engine, tmp_path, run_id, undo_id, source="corp", dry=False):
    folder = RunFolder(tmp_path / undo_id)
    ref = undo_step(source, run_id, engine, folder)
    tables = ChangeTables.load(folder, ref)
    if not dry:
        apply_tables(engine, tables, stamp=RunStamp(undo_id, note=f"undo of run {run_id}"))
    return tables


def _users(engine):
    with engine.connect() as c:
        return {r.id: {k: v for k, v in r._mapping.items() if k != "updated_at"} for r in c.execute(select(users))}


def _count(engine):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(user_events)).scalar_one()


def _owned(engine):
    """The users table's synced users as the log would rebuild them (its columns, bookkeeping aside)."""
    out = {}
    for id_, row in _users(engine).items():
        if row["source"]:
            out[id_] = {c: v for c, v in row.items() if c != "id"}
    return out


def _replayed(engine):
    from usersync.store.history import normal

    return {id_: {c: normal(c, v) for c, v in row.items()} for id_, row in replay(all_events(engine)).items()}


def _normal_table(engine):
    from usersync.store.history import normal

    return {id_: {c: normal(c, v) for c, v in row.items()} for id_, row in _owned(engine).items()}


def test_each_write_is_one_record_with_old_and_new_values_and_a_no_op_adds_none(engine):
    r = rules()
    _sync(engine, r, [record(i) for i in range(4)], "run-1")
    first = run_events(engine, "corp", "run-1")
    assert [(e.action, e.username) for e in first] == [("inserted", f"user00000{i}") for i in range(4)]
    table = _users(engine)
    by_name = {row["username"]: row for row in table.values()}
    assert first[0].user_id == by_name["user000000"]["id"] and first[0].rules_hash == "h" * 64
    assert first[0].detail["row"]["first_name"] == by_name["user000000"]["first_name"]
    assert first[0].detail["row"]["enabled"] is True and first[0].key == "EXAMPLE\\user000000"

    _sync(engine, r, [record(0, givenName="Zoe"), record(1), record(2)], "run-2")
    second = {e.action: e for e in run_events(engine, "corp", "run-2")}
    assert set(second) == {"updated", "deleted"}
    assert second["updated"].detail["changes"] == {"first_name": [by_name["user000000"]["first_name"], "Zoe"]}
    gone = by_name["user000003"]
    assert second["deleted"].detail["row"]["username"] == "user000003"
    assert second["deleted"].detail["row"]["created_at"] is not None and second["deleted"].user_id == gone["id"]

    before = _count(engine)
    _sync(engine, r, [record(0, givenName="Zoe"), record(1), record(2)], "run-3")
    assert _count(engine) == before  # a run that changes nothing adds nothing
    assert _replayed(engine) == _normal_table(engine)


def test_a_rolled_back_apply_leaves_no_record(engine):
    r = rules()
    _sync(engine, r, [record(i) for i in range(3)], "run-1")
    tables = ChangeTables.from_changeset(plan(r, [record(0, givenName="Zoe"), record(1), record(5)], load_users(engine)))
    twin = tables.inserts.to_pylist()[0] | {"ad_username": "other"}  # same username twice: the insert fails last
    tables.inserts = tables.inserts.from_pylist([*tables.inserts.to_pylist(), twin], schema=tables.inserts.schema)
    before, rows = _count(engine), _users(engine)
    with pytest.raises(Exception, match="(?i)unique"):
        apply_tables(engine, tables, stamp=RunStamp("run-2"))
    assert _count(engine) == before and _users(engine) == rows
    assert run_events(engine, "corp", "run-2") == []


def test_a_skip_that_repeats_is_one_record_counted_and_a_new_one_once_it_came_back(engine):
    r = rules()
    clash = record(1, sAMAccountName="user000000")  # same username as user000000: username_taken
    _sync(engine, r, [record(0)], "run-1")
    for n in (2, 3, 4):
        _sync(engine, r, [record(0), clash], f"run-{n}")
    skips = [e for e in all_events(engine) if e.action == "skipped"]
    assert len(skips) == 2  # both accounts claiming the username: one record each, not one per run
    assert {(s.seen, s.run_id, s.last_run_id, s.code) for s in skips} == {(3, "run-2", "run-4", SkipCode.DUPLICATE_KEY)}
    assert {s.detail["account"] for s in skips} == {"CN=John Smith 0,CN=Users,DC=example,DC=test",
                                                   "CN=Anna Smith 1,CN=Users,DC=example,DC=test"}
    _sync(engine, r, [record(0)], "run-5")  # the clash is gone: the records close
    _sync(engine, r, [record(0), clash], "run-6")  # and comes back: new records
    skips = [e for e in all_events(engine) if e.action == "skipped"]
    assert sorted((s.run_id, s.seen) for s in skips) == [("run-2", 3)] * 2 + [("run-6", 1)] * 2


def test_undo_puts_the_table_back_except_users_changed_since_and_undo_of_undo_redoes(engine, tmp_path):
    data = ad_rules()
    data["safety"] = {"deletion": "disable", "max_delete_percent": 100}
    r_disable = parse_rules(data)
    r = rules()
    _sync(engine, r, [record(i) for i in range(8)], "run-1")
    before = _users(engine)
    # run-2 updates 0 and 1, deletes 2 and 3, inserts 9
    _sync(engine, r, [record(0, givenName="Zoe"), record(1, sn="Other"), *[record(i) for i in (4, 5, 6, 7, 9)]],
          "run-2", at=T0)
    # run-3 disables 7
    _sync(engine, r_disable, [record(0, givenName="Zoe"), record(1, sn="Other"), *[record(i) for i in (4, 5, 6, 9)]],
          "run-3", at=T0 + timedelta(days=1))
    after_three = _users(engine)
    disabled = next(row for row in after_three.values() if row["username"] == "user000007")
    assert disabled["enabled"] is False and disabled["disabled_by_sync"] is True
    # an admin changes what run-2 wrote to user000001, and (as the application does) user000004's row and its
    # updated_at: neither is undone
    with engine.begin() as c:
        c.execute(update(users).where(users.c.username == "user000001").values(last_name="Admin's"))

    dry = _undo(engine, tmp_path, "run-3", "undo-3-dry", dry=True)
    assert dry.updates.num_rows == 1 and _users(engine) == after_three | {
        k: v for k, v in _users(engine).items() if v["username"] == "user000001"}
    _undo(engine, tmp_path, "run-3", "undo-3")
    assert _users(engine) == {**after_three, **{k: v for k, v in _users(engine).items()
                                                if v["username"] == "user000001"}} | {
        disabled["id"]: before[disabled["id"]]}

    undo2 = _undo(engine, tmp_path, "run-2", "undo-2")
    assert any("user000001: not put back, changed since in the users table (last_name)" in n for n in undo2.notes), undo2.notes
    now = _users(engine)
    expected = {**before}
    expected[next(i for i, v in before.items() if v["username"] == "user000001")] = \
        next(v for v in now.values() if v["username"] == "user000001")
    assert now == expected  # restored with their row ids and every value; the inserted user deleted
    admins = expected and next(i for i, v in now.items() if v["username"] == "user000001")
    replayed, table = _replayed(engine), _normal_table(engine)
    assert replayed[admins]["last_name"] == "Other" and table[admins]["last_name"] == "Admin's"  # not a sync's write
    replayed[admins]["last_name"] = "Admin's"
    assert replayed == table

    _undo(engine, tmp_path, "undo-2", "undo-undo-2", source="corp")
    redone = {v["username"]: v for v in _users(engine).values()}
    assert "user000002" not in redone and "user000009" in redone and redone["user000000"]["first_name"] == "Zoe"
    with pytest.raises(UndoError, match="wrote nothing"):
        _undo(engine, tmp_path, "no-such-run", "undo-x")


def test_a_deleted_user_whose_username_is_taken_since_is_not_restored(engine, tmp_path):
    r = rules()
    _sync(engine, r, [record(i) for i in range(3)], "run-1")
    _sync(engine, r, [record(0), record(1)], "run-2")
    with engine.begin() as c:
        c.execute(users.insert().values(username="USER000002", first_name="Local"))
    undo = _undo(engine, tmp_path, "run-2", "undo-2")
    assert undo.restores.num_rows == 0
    # SQLite gives a new row the highest id again, PostgreSQL a new one: either way the local user is in the way
    assert any(n.startswith("not undone: user000002: not restored, ") and "'USER000002'" in n for n in undo.notes), \
        undo.notes


def test_the_timeline_finds_a_user_by_each_name_in_order_across_runs(engine):
    r = rules()
    _sync(engine, r, [record(i) for i in range(3)], "run-1", at=T0)
    _sync(engine, r, [record(0, givenName="Zoe"), record(1), record(2)], "run-2", at=T0 + timedelta(days=1))
    _sync(engine, r, [record(1), record(2)], "run-3", at=T0 + timedelta(days=2))
    row = next(v for v in _users(engine).values() if v["username"] == "user000001")
    wanted = [("run-1", "inserted"), ("run-2", "updated"), ("run-3", "deleted")]
    for query in ("user000000", "USER000000", "EXAMPLE\\user000000", "example\\USER000000"):
        assert [(e.run_id, e.action) for e in timeline(engine, query)] == wanted, query
    assert [(e.run_id, e.action) for e in timeline(engine, row["email"])] == [("run-1", "inserted")]
    if row["extension"]:
        assert [(e.run_id, e.action) for e in timeline(engine, row["extension"])] == [("run-1", "inserted")]
    assert timeline(engine, "user000000", sources=["other"]) == []
    assert timeline(engine, "nobody") == [] and timeline(engine, "  ") == []


def test_retention_prunes_old_records_in_batches_and_keeps_open_ones_still_seen(engine):
    r = rules()
    _sync(engine, r, [record(i) for i in range(5)], "run-1", at=T0)
    clash = record(9, sAMAccountName="user000000")
    _sync(engine, r, [*[record(i) for i in range(5)], clash], "run-2", at=T0)
    _sync(engine, r, [*[record(i) for i in range(5)], clash], "run-3", at=T0 + timedelta(days=500))
    assert prune(engine, T0 + timedelta(days=100), batch=2) == 5  # the inserts; the skip was seen since
    assert [e.action for e in all_events(engine)] == ["skipped", "skipped"]  # both accounts of the clash
