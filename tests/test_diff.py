"""The diff: field policies on insert and update, matching, local users, ownership, unique numbers."""

from __future__ import annotations

import json

from tests.support.helpers import existing_rows, local_user, plan, record, rules
from usersync.plan.changes import ChangeSet


def test_insert_rows_follow_each_policy():
    r = rules(department={"policy": "default_if_empty", "attribute": "department"},
              personal_address="keep", hidden_from_directory="keep")
    p = plan(r, [record(1)])
    (ins,) = p.inserts
    row = ins.row
    assert row["username"] == "user000001" and row["ad_username"] == "user000001"
    assert row["domain"] == "EXAMPLE" and row["source"] == "corp"
    assert row["language"] == "en"  # on_insert
    assert row["department"] == "Support"  # default_if_empty fills an empty (new) field
    assert row["personal_address"] is None  # keep: blank on insert
    assert row["hidden_from_directory"] is False  # keep on a flag: false on insert
    assert p.counts() == {"read": 1, "inserted": 1, "updated": 0, "deleted": 0, "disabled": 0, "unchanged": 0, "skipped": 0}


def test_update_writes_only_import_fields_that_changed():
    r = rules()
    rows = existing_rows(r, [record(1), record(2)], language="de", personal_address="Via Roma 1")
    p = plan(r, [record(1, givenName="Johnny"), record(2)], rows)
    assert p.inserts == [] and p.deletes == []
    (upd,) = p.updates
    assert upd.id == 1 and upd.changes == {"first_name": ("Anna", "Johnny")}
    assert p.unchanged == 1  # on_insert language "de" and keep address are not overwritten


def test_default_if_empty_fills_only_empty_values():
    r = rules(department={"policy": "default_if_empty", "attribute": "department"})
    rows = existing_rows(r, [record(1), record(2)])
    rows[0]["department"] = None
    rows[1]["department"] = "Set by hand"
    p = plan(r, [record(1), record(2)], rows)
    assert [(u.id, u.changes) for u in p.updates] == [(1, {"department": (None, "Support")})]


def test_second_run_is_a_no_op():
    r = rules()
    recs = [record(i) for i in range(10)]
    p = plan(r, recs, existing_rows(r, recs))
    assert p.writes == 0 and p.unchanged == 10


def test_case_only_change_of_the_key_is_an_update_not_delete_and_insert():
    r = rules()
    rows = existing_rows(r, [record(1)])
    p = plan(r, [record(1, sAMAccountName="USER000001")], rows)
    assert p.inserts == [] and p.deletes == []
    (upd,) = p.updates
    assert upd.changes["ad_username"] == ("user000001", "USER000001")


def test_users_that_left_are_deleted_but_only_if_owned_by_this_source():
    r = rules()
    rows = existing_rows(r, [record(1), record(2), record(3)])
    rows[2]["source"] = "other_source"
    p = plan(r, [record(1)], rows)
    assert [d.id for d in p.deletes] == [2]


def test_local_users_are_never_touched():
    r = rules()
    rows = [local_user(1, "reception", extension="200"), local_user(2, "admin", ad_username="", domain="")]
    p = plan(r, [record(1)], rows)
    assert p.deletes == [] and p.updates == [] and len(p.inserts) == 1


def test_user_of_another_source_is_skipped_not_taken_over():
    r = rules()
    rows = existing_rows(r, [record(1)], source="branch_ad")
    p = plan(r, [record(1, givenName="X")], rows)
    assert p.writes == 0
    assert "owned by source 'branch_ad'" in p.skipped[0].reason


def test_keyed_user_without_owner_is_adopted():
    r = rules()
    rows = existing_rows(r, [record(1)], source=None)
    p = plan(r, [record(1)], rows)
    assert [u.changes for u in p.updates] == [{"source": (None, "corp")}]


def _skipping(r):
    """The rules with every number field set to ``on_clash: skip`` (the behaviour before held numbers)."""
    from usersync.rules import parse_rules
    from usersync.rules.fields import NUMBER_FIELDS

    data = r.model_dump(mode="json", exclude_none=True)
    for name in NUMBER_FIELDS:
        data["fields"][name] = {**data["fields"][name], "on_clash": "skip"}
    return parse_rules(data)


def test_number_clash_skips_only_that_user_when_the_rules_say_skip():
    r = _skipping(rules())
    rows = [local_user(1, "reception", extension="10002")]
    p = plan(r, [record(1), record(2), record(3)], rows)
    assert sorted(i.row["username"] for i in p.inserts) == ["user000001", "user000003"]
    (skip,) = p.skipped
    assert skip.ad_username == "user000002"
    assert "number 10002 is already used by user 'reception'" in skip.reason


def test_numbers_are_unique_across_all_number_columns():
    r = _skipping(rules())
    rows = [local_user(1, "fax-room", fax_number="10002")]
    p = plan(r, [record(2)], rows)
    assert p.inserts == [] and "10002" in p.skipped[0].reason


def test_a_clashing_number_is_held_aside_and_the_user_inserted_without_it():
    r = rules()
    rows = [local_user(1, "fax-room", fax_number="10002")]
    p = plan(r, [record(1), record(2)], rows)
    assert p.skipped == []
    assert {i.row["username"]: i.row["extension"] for i in p.inserts} == {"user000001": "10001", "user000002": None}


def test_same_username_from_two_domains_in_one_run_inserts_one_and_skips_the_other():
    from tests.support.rules import ad_rules
    from tests.support.small_runs import compute_diff
    from usersync.plan.mapping import MappedUser
    from usersync.rules import parse_rules

    r = parse_rules(ad_rules())
    a = MappedUser("a", "jdoe", "CORP", {"username": "jdoe"})
    b = MappedUser("b", "jdoe", "LAB", {"username": "jdoe"})
    p = compute_diff(r, [a, b], [])
    assert len(p.inserts) == 1 and "username jdoe is already used" in p.skipped[0].reason


def test_username_clash_with_a_local_user_is_skipped():
    r = rules()
    p = plan(r, [record(1)], [local_user(9, "USER000001")])
    assert p.inserts == [] and "username user000001 is already used" in p.skipped[0].reason


def test_a_number_freed_in_the_same_run_can_be_taken():
    r = rules()
    rows = existing_rows(r, [record(1), record(2)])
    # user 1 moves to a new extension; user 2 takes user 1's old one, in the same run
    recs = [record(1, **{"msRTCSIP-PrimaryUserAddress": "sip:555@x"}),
            record(2, **{"msRTCSIP-PrimaryUserAddress": "sip:10001@x"})]
    p = plan(r, recs, rows)
    assert p.skipped == []
    assert {u.id: u.changes["extension"] for u in p.updates} == {1: ("10001", "555"), 2: ("10002", "10001")}


def test_a_deleted_users_number_can_be_reused():
    r = rules()
    rows = existing_rows(r, [record(1)])
    p = plan(r, [record(2, **{"msRTCSIP-PrimaryUserAddress": "sip:10001@x"})], rows)
    assert len(p.deletes) == 1 and len(p.inserts) == 1 and p.skipped == []


def test_duplicate_keys_in_the_source_are_all_skipped_and_their_user_kept():
    r = rules()
    rows = existing_rows(r, [record(1)])
    dup = record(1, cn="Other")
    p = plan(r, [record(1), dup], rows)
    assert p.writes == 0
    assert len(p.skipped) == 2 and all("duplicate key EXAMPLE\\user000001" in s.reason for s in p.skipped)


def test_duplicate_keys_differing_only_in_case_are_duplicates():
    r = rules()
    p = plan(r, [record(1), record(2, sAMAccountName="USER000001")])
    assert p.inserts == [] and len(p.skipped) == 2


def test_an_account_skipped_for_bad_data_is_not_deleted():
    r = rules()
    rows = existing_rows(r, [record(1)])
    p = plan(r, [record(1, mail="broken")], rows)
    assert p.deletes == [] and p.updates == [] and len(p.skipped) == 1


def test_change_set_round_trips_through_json():
    r = rules()
    rows = existing_rows(r, [record(1), record(2)])
    p = plan(r, [record(1, givenName="J"), record(3), record(4, mail="bad")], rows)
    assert p.inserts and p.updates and p.deletes and p.skipped
    again = ChangeSet.from_json(json.loads(json.dumps(p.to_json())))
    assert again == p


def _rules_with_deletion(policy: str):
    from tests.support.rules import ad_rules
    from usersync.rules import parse_rules

    data = ad_rules()
    data["safety"] = {"deletion": policy}
    data["fields"]["enabled"] = {"policy": "on_insert", "value": True}
    return parse_rules(data)


def test_deletion_policy_disable_flags_the_user_and_reenables_it_when_it_returns():
    r = _rules_with_deletion("disable")
    rows = existing_rows(r, [record(1), record(2)])
    p = plan(r, [record(1)], rows)
    assert p.deletes == [] and [d.id for d in p.disables] == [2]
    # after apply: disabled by sync
    rows[1].update(enabled=False, disabled_by_sync=True)
    assert plan(r, [record(1)], rows).writes == 0  # still gone: nothing more to do
    back = plan(r, [record(1), record(2)], rows)
    assert [(u.id, u.changes) for u in back.updates] == [(2, {"disabled_by_sync": (True, False), "enabled": (False, True)})]


def test_deletion_policy_disable_leaves_a_directory_managed_enabled_flag_to_the_directory():
    from tests.support.rules import ad_rules
    from usersync.rules import parse_rules

    data = ad_rules()
    data["safety"] = {"deletion": "disable"}
    r = parse_rules(data)  # enabled is imported from userAccountControl
    rows = existing_rows(r, [record(1)])
    rows[0].update(enabled=False, disabled_by_sync=True)
    back = plan(r, [record(1, userAccountControl="514")], rows)  # returns, but disabled in AD
    assert back.updates[0].changes == {"disabled_by_sync": (True, False)}


def test_deletion_policy_keep_never_removes():
    r = _rules_with_deletion("keep")
    rows = existing_rows(r, [record(1), record(2)])
    p = plan(r, [record(1)], rows)
    assert p.deletes == [] and p.disables == [] and p.kept == 1 and p.owned == 2
