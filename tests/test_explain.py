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
    import pandas as pd
    import pytest

    from usersync.explain.match import AMBIGUOUS, absent_sections, find_user
    from usersync.run.pipeline import _detach_one
    from usersync.store.detach import DetachError

    data = ad_rules()
    data["source"].pop("domain")
    data["source"]["domain_attribute"] = "company"
    r = parse_rules(data)
    existing = pd.DataFrame([
        {"id": 1, "username": "jdoe.hq", "ad_username": "jdoe", "domain": "HQ", "source": "corp", "external_id": None},
        {"id": 2, "username": "jdoe.branch", "ad_username": "JDoe", "domain": "BRANCH", "source": "corp",
         "external_id": None},
        {"id": 3, "username": "anna", "ad_username": "anna", "domain": "HQ", "source": "corp", "external_id": None},
    ])
    facts = {"asked": "jdoe", "found": False, "key": "jdoe", "domain": None, "anchor": "jdoe"}
    assert find_user(r, existing, facts) == (None, AMBIGUOUS)
    assert "several users hold AD username 'jdoe'" in absent_sections(r, existing, facts)["match"][0]
    with pytest.raises(DetachError, match="fits several users"):
        _detach_one(r, existing, facts, "jdoe", None)  # type: ignore[arg-type]
    row, how = find_user(r, existing, {**facts, "domain": "branch"})
    assert (row["id"], how) == (2, "key")
    row, how = find_user(r, existing, {**facts, "key": "anna", "anchor": "anna"})
    assert (row["id"], how) == (3, "key")
