"""Identity by anchor (objectGUID): renames keep the user, re-created accounts are handled deliberately, users
without an anchor get it filled, and a delta read removes only what it was told is gone."""

from __future__ import annotations

from tests.support.helpers import existing_rows, plan, record, rules
from usersync.run.report import change_lines


def guid(i: int) -> str:
    return f"{{00000000-0000-0000-0000-{i:012d}}}"


def anchored(i: int, **overrides):
    return record(i, objectGUID=guid(i), **overrides)


def test_a_renamed_account_is_an_update_of_the_same_user_with_a_rename_line():
    r = rules()
    rows = existing_rows(r, [anchored(1), anchored(2)])
    p = plan(r, [anchored(1, sAMAccountName="anna.rossi"), anchored(2)], rows)
    assert p.inserts == [] and p.deletes == []
    (upd,) = p.updates
    assert upd.id == 1
    assert upd.changes["ad_username"] == ("user000001", "anna.rossi")
    assert upd.changes["username"] == ("user000001", "anna.rossi")
    (line,) = change_lines(p, 10)
    assert line.startswith("~ rename user000001 → anna.rossi (user user000001):")


def test_a_rename_onto_a_name_another_user_holds_is_skipped_and_nobody_is_touched():
    r = rules()
    rows = existing_rows(r, [anchored(1), anchored(2)])
    # two accounts swapping names in one run: admitted in the order that keeps every name unique
    p = plan(r, [anchored(1, sAMAccountName="user000002"), anchored(2, sAMAccountName="x2")], rows)
    assert {u.id for u in p.updates} == {1, 2} and p.skipped == []
    # a rename onto the name of a user another source owns: skipped with the reason, no row overwritten
    rows.append({**existing_rows(r, [record(3)], start_id=3)[0], "source": "hr", "username": "hr.user3"})
    p = plan(r, [anchored(1, sAMAccountName="user000003", givenName="Renamed"), anchored(2)], rows)
    assert p.updates == [] and p.deletes == [] and p.inserts == []
    (skip,) = p.skipped
    assert skip.reason == "AD username example\\user000003 is already used by user 'hr.user3'"


def test_re_created_account_replaces_the_old_user_with_a_note_saying_why():
    r = rules()
    rows = existing_rows(r, [anchored(1), anchored(2)])
    p = plan(r, [record(1, objectGUID=guid(99)), anchored(2)], rows)
    assert [d.id for d in p.deletes] == [1]
    (ins,) = p.inserts
    assert ins.row["ad_username"] == "user000001" and ins.row["external_id"] == guid(99)
    (note,) = p.notes
    assert "re-created" in note and guid(1) in note and guid(99) in note and "deleted" in note


def test_re_created_account_under_deletion_policy_disable_is_skipped_with_the_way_out():
    data_rules = rules()
    r = data_rules.model_copy(update={"safety": data_rules.safety.model_copy(update={"deletion": "disable"})})
    rows = existing_rows(r, [anchored(1)])
    p = plan(r, [record(1, objectGUID=guid(99))], rows)
    assert [d.id for d in p.disables] == [1] and p.inserts == []
    (skip,) = p.skipped
    assert "re-created in the source" in skip.reason and "recreated_accounts: adopt" in skip.reason


def test_re_created_account_can_be_adopted_by_the_old_user():
    base = rules()
    r = base.model_copy(update={"source": base.source.model_copy(update={"recreated_accounts": "adopt"})})
    rows = existing_rows(r, [anchored(1)])
    p = plan(r, [record(1, objectGUID=guid(99))], rows)
    assert p.deletes == [] and p.inserts == []
    (upd,) = p.updates
    assert upd.changes == {"external_id": (guid(1), guid(99))}


def test_a_user_without_an_anchor_gets_it_by_key_and_nothing_else_changes():
    r = rules()
    rows = existing_rows(r, [record(1)])
    assert rows[0]["external_id"] is None
    p = plan(r, [anchored(1)], rows)
    (upd,) = p.updates
    assert upd.changes == {"external_id": (None, guid(1))}


def test_a_renamed_account_skipped_for_bad_data_is_not_deleted():
    r = rules()
    rows = existing_rows(r, [anchored(1)])
    p = plan(r, [anchored(1, sAMAccountName="renamed", mail="not-an-address")], rows)
    assert p.deletes == [] and p.updates == [] and len(p.skipped) == 1


def test_sources_without_an_anchor_keep_key_identity():
    base = rules()
    r = base.model_copy(update={"source": base.source.model_copy(update={"external_id_attribute": None})})
    rows = existing_rows(r, [record(1)])
    p = plan(r, [record(1, sAMAccountName="renamed")], rows)
    assert [d.id for d in p.deletes] == [1] and [i.row["ad_username"] for i in p.inserts] == ["renamed"]


def test_delta_read_removes_only_the_anchors_it_was_told_are_gone():
    from tests.support.small_runs import compute_diff
    from usersync.plan.mapping import map_records

    r = rules()
    rows = existing_rows(r, [anchored(i) for i in range(1, 6)])
    mapped, skipped = map_records(r, [anchored(2, givenName="Changed")])  # delta: only what changed
    p = compute_diff(r, mapped, rows, skipped, read=1, removed={guid(4).upper()})
    assert [d.id for d in p.deletes] == [4]  # not 1, 3, 5: unchanged accounts are not read by a delta
    assert [u.id for u in p.updates] == [2]
