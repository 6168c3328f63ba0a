"""Mapping source records with the rules: values per policy, and bad records skipped with reasons."""

from __future__ import annotations

from tests.support.helpers import record, rules
from usersync.plan.mapping import map_records


def test_import_prefix_transforms_and_constants():
    r = rules(
        voicemail_number={"policy": "prefix", "prefix": "8", "attribute": "ipPhone"},
        fax_number={"policy": "import", "attribute": "telephoneNumber", "transforms": ["digits", "last:6"]},
        department={"policy": "default_if_empty", "value": "Unassigned"},
        voicemail_enabled={"policy": "on_insert", "value": True},
    )
    (user,), skipped = map_records(r, [record(7)])
    assert skipped == []
    assert user.ad_username == "user000007" and user.domain == "EXAMPLE"
    v = user.values
    assert v["username"] == "user000007"
    assert v["extension"] == "10007"  # sip:10007@example.test → sip_user
    assert v["voicemail_number"] == "810007"
    assert v["fax_number"] == "110007"  # "+39 0461 10007" → digits → last 6
    assert v["department"] == "Unassigned" and v["voicemail_enabled"] is True
    assert v["language"] == "en" and v["enabled"] is True
    assert "personal_address" not in v  # keep fields yield nothing


def test_missing_attribute_maps_to_none():
    (user,), _ = map_records(rules(), [record(1, department=None)])
    assert user.values["department"] is None


def test_bad_records_are_skipped_with_the_account_and_reason():
    records = [
        record(1, sAMAccountName=None),
        record(2, mail="not-an-address"),
        record(3, **{"msRTCSIP-PrimaryUserAddress": "sip:john@example.test"}),
        record(4, userAccountControl="lots"),
        record(5, department="x" * 300),
        record(6),
    ]
    mapped, skipped = map_records(rules(), records)
    assert [m.ad_username for m in mapped] == ["user000006"]
    reasons = {s.account: s.reason for s in skipped}
    assert "no sAMAccountName" in reasons[records[0].account]
    assert "e-mail" in reasons[records[1].account]
    assert "not a phone number" in reasons[records[2].account]
    assert "userAccountControl" in reasons[records[3].account]
    assert "300 characters" in reasons[records[4].account]
    # a skipped record with a key keeps it, so its user is protected from deletion
    assert {s.ad_username for s in skipped} == {None, "user000002", "user000003", "user000004", "user000005"}


def test_multi_valued_attribute_uses_the_first_value():
    (user,), _ = map_records(rules(), [record(1, department=["Sales", "Support"])])
    assert user.values["department"] == "Sales"
