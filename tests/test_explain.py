"""The words of an account's explanation and of a draft's comparison, on records built in the test."""

from __future__ import annotations

from tests.support.helpers import record, rules
from tests.support.rules import ad_rules
from usersync.explain.fields import field_sections
from usersync.explain.outcome import result_line
from usersync.rules import parse_rules
from usersync.rules.compare import rules_changes


def test_a_value_a_transform_refuses_says_where_and_the_account_is_skipped():
    r = rules(extension={"policy": "import", "attribute": "ipPhone", "transforms": ["digits"]})
    lines = field_sections(r, record(3, ipPhone="ext. none"))["fields"]
    assert "extension: import, ipPhone = 'ext. none' → digits → (empty) (written on insert" in "\n".join(lines)
    bad = field_sections(r, record(3, mail="not-an-address"))["fields"]
    assert bad[-1].startswith("result: NOT MAPPED — email: not an e-mail address: 'not-an-address'")


def test_a_disabled_account_under_skip_is_held_and_says_why():
    data = ad_rules(disabled_accounts="skip")
    lines = field_sections(parse_rules(data), record(4, userAccountControl="514"))["fields"]
    assert lines[-1] == ("result: HELD — disabled in the source (userAccountControl) and disabled_accounts: skip: its "
                         "user is left exactly as it is (never inserted, updated or removed)")


def test_the_result_line_follows_apply():
    planned = {"planned": {"updated": 1}}
    assert result_line(planned, True, {}, None).startswith("result: dry run: would update")
    assert result_line(planned, False, {"written": {"updated": 1}}, None) == "result: updated"
    assert result_line(planned, False, {"written": {"updated": 0}, "conflict_count": 1,
                                        "conflicts": ["jdoe: changed meanwhile"]}, None).startswith(
        "result: NOT APPLIED — the users table changed during the run: jdoe: changed meanwhile")
    assert result_line(planned, False, {}, {"step": "apply", "error": "boom"}).startswith("result: NOTHING WRITTEN")


def test_a_drafts_changes_are_listed_setting_by_setting():
    live = ad_rules()
    draft = ad_rules(filter="(&(objectClass=user)(department=UC))")
    draft["fields"]["mobile"] = {"policy": "import", "attribute": "mobile"}
    draft["safety"] = {"deletion": "disable"}
    lines = rules_changes(parse_rules(live), parse_rules(draft))
    assert "scope: source.filter: '(objectClass=user)' → '(&(objectClass=user)(department=UC))'" in lines
    assert "fields: fields.mobile.policy: 'keep' → 'import'" in lines
    assert "fields: fields.mobile.attribute: None → 'mobile'" in lines
    assert "safety: safety.deletion: 'delete' → 'disable'" in lines
    assert rules_changes(parse_rules(live), parse_rules(live)) == ["the draft holds the same rules as the live file"]


def test_an_absent_account_named_by_an_ad_username_two_domains_share_is_matched_to_nobody():
    """The diff's own matcher decides (``plan.explained``); the explanation and the detach read its decision."""
    import pytest

    from usersync.explain.match import absent_sections
    from usersync.plan.diff import diff_frames
    from usersync.plan.tables import mapped_schema, rows_frame, to_frame, value_fields_of
    from usersync.run.pipeline import _detach_one
    from usersync.store.detach import DetachError

    data = ad_rules()
    data["source"].pop("domain")
    data["source"]["domain_attribute"] = "company"
    r = parse_rules(data)
    existing = rows_frame([
        {"id": 1, "username": "jdoe.hq", "ad_username": "jdoe", "domain": "HQ", "source": "corp", "external_id": None},
        {"id": 2, "username": "jdoe.branch", "ad_username": "JDoe", "domain": "BRANCH", "source": "corp",
         "external_id": None},
        {"id": 3, "username": "anna", "ad_username": "anna", "domain": "HQ", "source": "corp", "external_id": None},
    ])
    nobody = to_frame(mapped_schema(value_fields_of(r)).empty_table())

    def decided(key, domain, anchor):
        return diff_frames(r, nobody, existing, [], read=0, one_account=True, explain=(key, domain, anchor, False))

    facts = {"asked": "jdoe", "found": False, "key": "jdoe", "domain": None, "anchor": "jdoe"}
    plan = decided("jdoe", None, "jdoe")
    assert (plan.explained["how"], plan.explained["user"]) == ("ambiguous", None)
    assert "several users hold AD username 'jdoe'" in absent_sections(r, existing, facts, plan)["match"][0]
    with pytest.raises(DetachError, match="fits several users"):
        _detach_one(r, existing, "jdoe", plan)
    assert (decided("jdoe", "branch", None).explained["user"], decided("jdoe", "branch", None).explained["how"]) == (2, "key")
    anna = decided("anna", None, "anna")
    assert (anna.explained["user"], anna.explained["how"]) == (3, "key")
    assert anna.explained["if_gone"] == {"policy": "delete", "deleted": True}
    assert "the next full run DELETES this user (safety.deletion: delete)" in absent_sections(
        r, existing, {**facts, "key": "anna"}, anna)["outcome"]
    assert _detach_one(r, existing, "anna", anna).detaches.column("id").to_pylist() == [3]


def test_an_absent_accounts_fate_is_what_the_leavers_rules_decide_grace_and_protection_included():
    from datetime import UTC, datetime, timedelta

    from usersync.explain.match import absent_sections
    from usersync.plan.diff import diff_frames
    from usersync.plan.tables import mapped_schema, rows_frame, to_frame, value_fields_of

    data = ad_rules()
    data["safety"] = {"deletion": "disable", "delete_after_days": 30}
    data["protect"] = [{"field": "department", "in": ["Board"]}]
    r = parse_rules(data)
    now = datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
    existing = rows_frame([
        {"id": 1, "username": "gone.since", "ad_username": "gone", "domain": "EXAMPLE", "source": "corp",
         "disabled_by_sync": True, "enabled": False, "left_at": now - timedelta(days=10)},
        {"id": 2, "username": "boss", "ad_username": "boss", "domain": "EXAMPLE", "source": "corp", "department": "Board"},
    ])
    nobody = to_frame(mapped_schema(value_fields_of(r)).empty_table())
    facts = {"found": False}

    def outcome(key):
        plan = diff_frames(r, nobody, existing, [], read=0, as_of=now, one_account=True, explain=(key, "EXAMPLE", key, False))
        return plan.explained["if_gone"], absent_sections(r, existing, {**facts, "key": key}, plan)["outcome"][1]

    fate, words = outcome("gone")
    assert fate["kept"] and fate["until"] == (now + timedelta(days=20)).isoformat()
    assert words == ("the user stays disabled (safety.deletion: disable; it already is); deleted from 2026-07-20 02:00 "
                     "UTC on, unless the account returns")
    fate, words = outcome("boss")
    assert fate["held"].startswith("protected: ") and "deleted" not in fate and "disabled" not in fate
    assert words.startswith("the next full run leaves this user as it is: protected:")
