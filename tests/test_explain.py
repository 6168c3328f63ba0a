"""The words of an account's explanation and of a draft's comparison, on records built in the test."""

from __future__ import annotations

from tests.conftest import ad_rules
from tests.support.helpers import record, rules
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
