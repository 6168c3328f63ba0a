"""Rules files: validation (each error case names the field and the reason), defaults, the CLI."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.support.repo import REPO
from tests.support.rules import ad_rules
from usersync.cli import main as cli
from usersync.rules import RulesError, load_rules, load_rules_dir, parse_rules
from usersync.rules.fields import FIELDS, Policy


def _problems(data, path="x.yaml") -> list[tuple[str, str]]:
    with pytest.raises(RulesError) as err:
        parse_rules(data, path)
    assert str(path) in str(err.value)
    return err.value.problems


def _with(**changes):
    data = copy.deepcopy(ad_rules())
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if value is None:
            data[section].pop(key)
        else:
            data[section][key] = value
    return data


def test_a_valid_file_parses_and_omitted_fields_are_keep():
    rules = parse_rules(ad_rules())
    assert rules.source.name == "corp"
    assert rules.rule("personal_address").policy is Policy.KEEP
    assert set(rules.fields) == set(FIELDS)
    assert rules.source_attributes()[0] == "sAMAccountName"
    assert "givenName" in rules.source_attributes() and "mail" in rules.source_attributes()


def test_shipped_rules_files_are_valid():
    valid, errors = load_rules_dir(REPO / "include" / "rules")
    assert errors == {}
    assert {"demo", "corp_ad"} <= set(valid)


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"source__name": "a b"}, "source.name", "no blanks"),
        ({"source__name": "ab"}, "source.name", "3 to 64"),
        ({"source__type": "novell"}, "source.type", "active_directory"),
        ({"source__domain": None}, "source", "exactly one of 'domain'"),
        ({"source__domain": "  "}, "source", "must not be blank"),
        ({"source__conn_id": None}, "source.conn_id", "required"),
        ({"source__filter": "objectClass=user"}, "source.filter", "not an LDAP filter"),
        ({"source__page_size": 0}, "source.page_size", "greater than or equal to 1"),
        ({"source__colour": "red"}, "source.colour", "Extra inputs"),
        ({"source__filter": "(objectClass=user\x00)"}, "source.filter", "control character in the LDAP filter"),
        ({"source__name": "corp\nad"}, "source.name", "no blanks"),
        ({"source__type": "ldap", "source__delta": {}}, "source.delta", "delta sync is for active_directory and entra_id sources only"),
        ({"source__external_id_attribute": "employeeID", "source__delta": {}}, "source.delta", "needs external_id_attribute objectGUID"),
        ({"source__delta": {"full_every_days": 0}}, "source.delta.full_every_days", "greater than or equal to 1"),
        ({"source__type": "ldap", "source__disabled_accounts": "skip"}, "source.disabled_accounts", "'skip' is for active_directory, cucm, entra_id and scim"),
        ({"source__disabled_accounts": "ignore"}, "source.disabled_accounts", "'import', 'exclude' or 'skip'"),
        ({"source__recreated_accounts": "merge"}, "source.recreated_accounts", "'replace' or 'adopt'"),
        ({"source__member_of": ["UC Users"]}, "source.member_of", "not group DNs: 'UC Users'"),
        ({"schedule__hour": 24}, "schedule.hour", "less than or equal to 23"),
        ({"schedule__timezone": "Mars/Olympus"}, "schedule.timezone", "unknown timezone"),
        ({"fields__nickname": "keep"}, "fields.nickname", "unknown field"),
        ({"fields__username": "keep"}, "fields.username", "not available"),
        ({"fields__username": None}, "fields.username", "required"),
        ({"fields__personal_address": {"policy": "on_insert", "value": "Via Roma 1"}}, "fields.personal_address", "not available"),
        ({"fields__extension": {"policy": "default_if_empty", "value": "100"}}, "fields.extension", "fixed value"),
        ({"fields__enabled": {"policy": "on_insert", "value": "yes please"}}, "fields.enabled", "true or false"),
        ({"fields__enabled": {"policy": "import", "attribute": "userAccountControl"}}, "fields.enabled", "boolean transform"),
        ({"fields__language": {"policy": "on_insert", "value": True}}, "fields.language", "must be text"),
        ({"fields__department": {"policy": "import", "attribute": "x", "transforms": ["flag"]}}, "fields.department", "only for boolean"),
        ({"fields__department": {"policy": "import"}}, "fields.department", "needs an 'attribute'"),
        ({"fields__department": {"policy": "on_insert"}}, "fields.department", "needs a 'value'"),
        ({"fields__department": {"policy": "keep", "value": "x"}}, "fields.department", "takes no value"),
        ({"fields__department": {"policy": "import", "attribute": "d", "prefix": "x"}}, "fields.department", "only valid with policy 'prefix'"),
        ({"fields__extension": {"policy": "prefix", "attribute": "ipPhone"}}, "fields.extension", "needs a 'prefix'"),
        ({"fields__department": {"policy": "default_if_empty", "value": "a", "attribute": "b"}}, "fields.department", "exactly one"),
        ({"fields__extension": {"policy": "import", "attribute": "ipPhone", "transforms": ["last"]}}, "fields.extension", "positive number"),
        ({"fields__extension": {"policy": "import", "attribute": "ipPhone", "transforms": ["rot13"]}}, "fields.extension", "unknown transform"),
        ({"fields__department": {"policy": "sometimes", "attribute": "d"}}, "fields.department.policy", "on_insert"),
    ],
)
@pytest.mark.bad_input
def test_each_malformed_rule_names_field_and_reason(change, where, reason):
    problems = _problems(_with(**change))
    assert any(loc == where and reason in msg for loc, msg in problems), problems


def test_all_problems_are_reported_at_once():
    problems = _problems(_with(source__type="x", fields__nickname="keep"))
    assert {loc for loc, _ in problems} >= {"source.type", "fields.nickname"}


def test_file_errors_name_the_file_and_the_yaml_position(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("source: {name: abc\n")
    with pytest.raises(RulesError, match=r"(?s)broken\.yaml.*line 2"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(RulesError, match="mapping"):
        load_rules(tmp_path / "list.yaml")


@pytest.mark.bad_input
@pytest.mark.parametrize("content, reason", [
    (b"source:\n  name: caf\xe9\n", "not UTF-8: byte 0xe9 at offset 19"),
    (b"source:\n  name: a\x00b\n", "not valid YAML"),
    (b"source: {name: '\x07'}\n", "not valid YAML"),
])
def test_files_with_broken_bytes_are_refused_naming_file_and_cause(tmp_path, content, reason):
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    with pytest.raises(RulesError, match=reason) as refused:
        load_rules(path)
    assert str(path) in str(refused.value)


def test_source_name_defaults_to_file_name(tmp_path):
    data = ad_rules()
    del data["source"]["name"]
    path = tmp_path / "branch_office.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_rules(path).source.name == "branch_office"


def test_a_bad_file_does_not_hide_good_ones_and_names_must_be_unique(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(ad_rules("alpha")))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(ad_rules("alpha")))
    (tmp_path / "c.yaml").write_text("source: [")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(ad_rules("delta")))
    valid, errors = load_rules_dir(tmp_path)
    assert set(valid) == {"alpha", "delta"}
    assert valid["alpha"][1] == tmp_path / "a.yaml"
    assert set(errors) == {str(tmp_path / "b.yaml"), str(tmp_path / "c.yaml")}
    assert "already used by" in str(errors[str(tmp_path / "b.yaml")])


def test_schedule_auto_gives_a_daily_cron_and_off_means_manual():
    rules = parse_rules(_with(schedule__auto=True, schedule__hour=3, schedule__minute=15))
    assert rules.schedule.cron == "15 3 * * *"
    assert parse_rules(ad_rules()).schedule.cron is None


def test_cli_validate_and_fields(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(ad_rules()))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with(fields__nickname="keep")))
    assert cli(["rules", "validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli(["rules", "validate", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "fields.nickname" in err
    assert cli(["rules", "fields"]) == 0
    out = capsys.readouterr().out
    assert "personal_address" in out and "no fixed values" in out


@pytest.mark.parametrize(
    "entry, where, reason",
    [
        ({"field": "dept", "in": ["Board"]}, "protect.0.field", "unknown field 'dept'"),
        ({"field": "department"}, "protect.0", "exactly one of equals, in, matches, range (got none)"),
        ({"field": "department", "in": ["Board"], "equals": "Board"}, "protect.0", "(got equals, in)"),
        ({"field": "department", "in": []}, "protect.0.in", "at least 1 item"),
        ({"field": "username", "matches": "svc-("}, "protect.0.matches", "not a regular expression"),
        ({"field": "department", "range": [1, 9]}, "protect.0", "not a number field"),
        ({"field": "extension", "range": [9099, 9000]}, "protect.0", "9099 is above 9000"),
        ({"field": "enabled", "in": ["yes"]}, "protect.0", "is a flag: use equals: true or equals: false"),
        ({"field": "department", "in": ["Board"], "colour": "red"}, "protect.0.colour", "Extra inputs"),
    ],
)
@pytest.mark.bad_input
def test_each_malformed_protect_entry_names_where_and_why(entry, where, reason):
    data = ad_rules()
    data["protect"] = [entry]
    problems = _problems(data)
    assert any(loc == where and reason in msg for loc, msg in problems), problems


@pytest.mark.bad_input
def test_a_grace_period_needs_the_disable_policy():
    data = ad_rules()
    data["safety"] = {"deletion": "delete", "delete_after_days": 30}
    assert any(loc == "safety" and "a grace period needs deletion: disable" in msg for loc, msg in _problems(data))
    data["safety"] = {"deletion": "disable", "delete_after_days": 30}
    assert parse_rules(data).safety.grace


def test_protect_conditions_match_as_documented():
    from usersync.rules.protect import ProtectRule, protection

    board = ProtectRule.model_validate({"field": "department", "in": ["Board"]})
    assert board.holds_for(" board ") and not board.holds_for("Boardroom") and not board.holds_for(None)
    emergency = ProtectRule.model_validate({"field": "extension", "range": [9000, 9099], "updates": False})
    assert emergency.holds_for("9000") and emergency.holds_for("9099") and not emergency.holds_for("9100")
    assert not emergency.holds_for("+49 9050")  # not a plain number: outside any range
    service = ProtectRule.model_validate({"field": "username", "matches": "svc-.*"})
    assert service.holds_for("SVC-backup") and not service.holds_for("x-svc-backup")  # the whole value
    licensed = ProtectRule.model_validate({"field": "call_recording_license", "equals": True})
    assert licensed.holds_for(True) and not licensed.holds_for(False)
    rules = [board, emergency]
    assert protection(rules, {"department": "Sales", "extension": "1000"}) is None
    assert protection(rules, {"department": "Board", "extension": "1000"}) == ("department in [Board]", True)
    assert protection(rules, {"department": "Board", "extension": "9001"}) == \
        ("department in [Board]; extension in range 9000–9099", False)
    assert protection(rules, {"sync_protected": True}) == ("sync_protected is set", True)


@pytest.mark.bad_input
@pytest.mark.parametrize("attribute", ["userPassword", "portal_password", "unicodePwd", "mailPin", "apiToken"])
def test_an_attribute_that_holds_a_secret_is_refused_as_a_mapping_source(attribute):
    problems = _problems(_with(fields__department={"policy": "import", "attribute": attribute}))
    assert any(f"attribute {attribute!r}: its name says it holds a secret" in msg for _loc, msg in problems), problems
