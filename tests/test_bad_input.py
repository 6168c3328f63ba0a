"""The bad-input corpus: hostile or broken values from the source are skipped or normalised with their reason,
every other user is synced, and nothing is ever concatenated into an LDAP filter or an SQL statement."""

from __future__ import annotations

import unicodedata

import pytest

from devtools.slapd import SlapdServer
from tests.support.helpers import record, rules, sync_once, table_rows
from tests.support.rules import ad_rules
from usersync.plan.mapping import map_records
from usersync.rules import parse_rules
from usersync.sources.ldap.decoding import GUID_ATTRIBUTES, values_of
from usersync.sources.ldap.directory import LdapSettings
from usersync.sources.ldap.reader import LdapSource

pytestmark = pytest.mark.bad_input
NFC = unicodedata.normalize("NFC", "José")
NFD = unicodedata.normalize("NFD", "José")

#: (attribute overrides, expected reason) — each record is skipped, naming the field and the cause
SKIPPED = [
    ({"givenName": "Ann\x00a"}, "first_name: contains control character U+0000 (NUL)"),
    ({"sn": "Rossi\x07"}, "last_name: contains control character U+0007"),
    ({"department": "Sales\nand\nMarketing"}, "department: contains control character U+000A (line break)"),
    ({"givenName": "Caf\ufffd"}, "first_name: not valid UTF-8 in the source"),
    ({"department": ("very long line " * 30).strip()}, "department: 449 characters, the column holds 256"),
    ({"msRTCSIP-PrimaryUserAddress": "sip:+39 0461 12@x"}, "extension: not a phone number: '+39 0461 12'"),
    ({"sAMAccountName": "user\x00x"}, "sAMAccountName: contains control character U+0000 (NUL)"),
]
#: values that are odd but valid: synced verbatim
VERBATIM = {
    "givenName": "O'Brien\"; DROP TABLE users; --",
    "sn": "*)(objectClass=*))(|(cn=*",
    "department": "R&D \\ Ops (north)",
}


def test_each_bad_value_is_skipped_with_its_reason_and_the_rest_mapped():
    records = [record(i, **change) for i, (change, _why) in enumerate(SKIPPED)] + [record(50, **VERBATIM)]
    mapped, skipped = map_records(rules(), records)
    reasons = {s.account: s.reason for s in skipped}
    for rec, (_change, why) in zip(records, SKIPPED):
        assert why in reasons.pop(rec.account), rec
    assert reasons == {}
    (good,) = mapped
    assert (good.values["first_name"], good.values["last_name"], good.values["department"]) == (
        VERBATIM["givenName"], VERBATIM["sn"], VERBATIM["department"])


def test_keys_differing_only_in_case_or_unicode_normalisation_are_one_key():
    mapped, _ = map_records(rules(), [record(1, sAMAccountName=NFC), record(2, sAMAccountName=NFD.upper())])
    assert {m.ad_username for m in mapped} == {NFC, unicodedata.normalize("NFC", NFD.upper())}
    from tests.support.small_runs import compute_diff

    plan = compute_diff(rules(), mapped, [])
    assert plan.inserts == [] and len(plan.skipped) == 2
    assert all("duplicate key" in s.reason for s in plan.skipped)


def test_bytes_that_are_not_utf8_never_become_a_hex_string():
    assert values_of([b"Jos\xe9"]) == "Jos\ufffd"  # Latin-1 bytes: refused by mapping, not stored as '4a6f73e9'
    assert {"objectguid", "invocationid"} == GUID_ATTRIBUTES


@pytest.fixture
def hostile_directory(tmp_path):
    server = SlapdServer(tmp_path / "slapd", users=5).start()
    server.add_user(100, givenName=VERBATIM["givenName"], sn=VERBATIM["sn"], department=VERBATIM["department"])
    server.add_user(101, department="Sales\nand\nMarketing")
    server.add_user(102, sAMAccountName=NFD)
    server.add_user(103, sAMAccountName=NFC.upper())
    server.add_user(104, **{"msRTCSIP-PrimaryUserAddress": "sip:+39 0461 12@x"})
    yield server
    server.stop()


def test_a_hostile_directory_end_to_end_on_both_databases(hostile_directory, engine, tmp_path):
    data = ad_rules(partitions=3)
    data["safety"] = {"max_delete_percent": 100}
    r = parse_rules(data)
    settings = LdapSettings("127.0.0.1", hostile_directory.connection_extra()["login"],
                            hostile_directory.service_password, ldaps_port=hostile_directory.tls_port,
                            ldap_port=hostile_directory.port, ca_certs_file=str(hostile_directory.certs.ca))
    with LdapSource(r.source, settings, r.source_attributes()) as source:
        result = sync_once(r, source, engine, tmp_path / "run")
    rows = table_rows(str(engine.url.render_as_string(hide_password=False)))
    assert set(rows) == {f"user{i:06d}" for i in range(5)} | {"user000100"}  # every good user synced
    assert rows["user000100"]["first_name"] == VERBATIM["givenName"]  # quotes and SQL: stored verbatim
    assert rows["user000100"]["last_name"] == VERBATIM["sn"]  # filter metacharacters: stored verbatim
    reasons = sorted(s.reason for s in result["plan"].to_changeset().skipped)
    assert len(reasons) == 4
    assert any("line break" in why for why in reasons) and any("not a phone number" in why for why in reasons)
    assert sum("duplicate key" in why for why in reasons) == 2  # José and JOSÉ, NFD and NFC: one key
