"""Partitioned extraction on a real slapd: partitions are disjoint, together exhaustive, and each is paged."""

from __future__ import annotations

from collections import Counter

import pytest

from devtools.ad_data import USERS_DN, ad_user
from devtools.slapd import SERVICE_DN
from tests.support.rules import ad_rules
from usersync.rules import parse_rules
from usersync.sources.ldap.directory import LdapSettings
from usersync.sources.ldap.partitions import ALPHABET, final_chars, partition_filter
from usersync.sources.ldap.reader import LdapSource

#: keys that end in digits, letters of either case, non-ASCII letters, punctuation, blanks and CJK; and none
EDGE_KEYS = ["bob9", "BOB8", "Zoë", "ÅSA", "zoe", "ZOE", "x_", "~tilde~", "a!", "日本", "Mixed9Z", "12345", "ÿ",
             "trailing ", "İ", "straße", "UPPERCASE", "end-", "K"]


def _source(ldap, partitions: int) -> LdapSource:
    data = ad_rules(page_size=1000, partitions=partitions, object_path=USERS_DN)
    rules = parse_rules(data)
    settings = LdapSettings("127.0.0.1", SERVICE_DN, ldap.service_password, ldaps_port=ldap.tls_port,
                            ldap_port=ldap.port, ca_certs_file=str(ldap.certs.ca))
    return LdapSource(rules.source, settings, rules.source_attributes())


def _read(ldap, partitions: int) -> list[list[str]]:
    with _source(ldap, partitions) as source:
        info = source.check()
        return [[r.account for r in source.partition(info, i, partitions)] for i in range(partitions)]


def test_every_character_belongs_to_exactly_one_partition():
    for count in (1, 2, 3, 7, 36):
        owners = Counter(c for i in range(count) for c in final_chars(i, count))
        assert set(owners) == set(ALPHABET) and set(owners.values()) == {1}
    assert partition_filter("sAMAccountName", 0, 1) is None
    with pytest.raises(ValueError):
        partition_filter("sAMAccountName", 2, 2)


def test_partitions_are_disjoint_and_exhaustive_for_edge_case_keys(make_slapd):
    ldap = make_slapd(users=40)
    with ldap.admin() as conn:
        for n, key in enumerate(EDGE_KEYS):
            attrs = {**ad_user(1000 + n), "sAMAccountName": key}
            conn.add(f"CN=Edge {n},{USERS_DN}", attributes=attrs)
        keyless = {k: v for k, v in ad_user(2000).items() if k != "sAMAccountName"}
        conn.add(f"CN=No Key,{USERS_DN}", attributes=keyless)
    (whole,) = _read(ldap, 1)
    assert len(whole) == 40 + len(EDGE_KEYS) + 1
    for count in (2, 3, 5, 36):
        parts = _read(ldap, count)
        everything = [dn for part in parts for dn in part]
        assert len(everything) == len(set(everything)), f"{count} partitions overlap"
        assert set(everything) == set(whole), f"{count} partitions miss {set(whole) - set(everything)}"
    first = [dn.lower() for dn in _read(ldap, 3)[0]]
    assert f"cn=no key,{USERS_DN}".lower() in first  # entries without a key are read (and later skipped)


def test_each_partition_is_paged_past_the_servers_1000_entry_cap(make_slapd):
    ldap = make_slapd(users=2500)  # slapd here answers at most 1000 entries per search, as AD does
    parts = _read(ldap, 2)
    assert all(len(part) > 1000 for part in parts)
    assert sum(len(p) for p in parts) == 2500 and len(set(parts[0]) | set(parts[1])) == 2500


def test_partitions_are_for_ldap_sources_only():
    data = ad_rules(partitions=4)
    assert parse_rules(data).source.partition_count == 4
    assert parse_rules(ad_rules()).source.partition_count == 2  # the documented default
