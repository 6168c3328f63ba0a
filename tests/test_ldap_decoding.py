"""The lean LDAP entry decoder against ldap3's own, on BER messages as a server sends them.

The messages are encoded here byte by byte (RFC 4511: LDAPMessage, SearchResultEntry, SearchResultReference),
decoded by ldap3's ``decode_message_fast`` exactly as on a live connection, then given to both decoders.
"""

from __future__ import annotations

import uuid

import ldap3
import pytest
from ldap3.operation.search import search_result_entry_response_to_dict_fast
from ldap3.utils.asn1 import decode_message_fast

from usersync.sources.ldap import decoding
from usersync.sources.ldap.decoding import lean_decoder, lean_entry, values_of


def tlv(tag: int, content: bytes) -> bytes:
    """One BER element: tag, definite length (short or long form), content."""
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | len(n.to_bytes((n.bit_length() + 7) // 8, "big"))]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def message(op: bytes, message_id: int = 2, controls: bytes = b"") -> bytes:
    return tlv(0x30, tlv(0x02, bytes([message_id])) + op + controls)


def entry(dn: bytes, attributes: dict[bytes, list[bytes]]) -> bytes:
    """[APPLICATION 4] SearchResultEntry: objectName, SEQUENCE OF (type, SET OF value)."""
    parts = b"".join(tlv(0x30, octets(name) + tlv(0x31, b"".join(octets(v) for v in values)))
                     for name, values in attributes.items())
    return tlv(0x64, octets(dn) + tlv(0x30, parts))


GUID = uuid.UUID("6f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b")
ENTRIES = {
    "plain": entry(b"CN=Ada Lovelace,CN=Users,DC=corp,DC=example",
                   {b"sAMAccountName": [b"ada"], b"mail": [b"ada@corp.example"]}),
    "multi-valued": entry(b"CN=Grace,CN=Users,DC=corp,DC=example",
                          {b"otherTelephone": [f"+39 02 {i:04d}".encode() for i in range(300)]}),
    "binary": entry(b"CN=Bin,CN=Users,DC=corp,DC=example",
                    {b"objectGUID": [GUID.bytes_le], b"thumbnailPhoto": [bytes(range(256)) * 4]}),
    "empty": entry(b"CN=Nobody,CN=Users,DC=corp,DC=example", {}),
    "non-UTF-8 name": entry("CN=José,CN=Users,DC=corp,DC=example".encode("latin-1"), {b"cn": [b"Jos\xe9"]}),
    "ranged": entry(b"CN=Group,DC=corp,DC=example", {b"member;range=0-1499": [b"CN=u%d" % i for i in range(1500)]}),
}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_the_lean_decoder_reads_an_entry_as_ldap3_does(name):
    decoded = decode_message_fast(message(ENTRIES[name]))
    ours = lean_entry(decoded)
    theirs = search_result_entry_response_to_dict_fast(decoded["payload"], None, None, False)
    assert ours is not None and ours["type"] == "searchResEntry"
    assert ours["dn"] == theirs["dn"] and bytes(ours["raw_dn"]) == bytes(theirs["raw_dn"])
    assert ours["raw_attributes"] == {k: [bytes(v) for v in vs] for k, vs in theirs["raw_attributes"].items()}


def test_an_attribute_without_values_reads_as_an_empty_list():
    # RFC 4511 allows an empty SET of values (typesOnly searches); ldap3 2.9.1's decoder gives None there
    decoded = decode_message_fast(message(entry(b"CN=Blank,DC=corp,DC=example", {b"description": []})))
    assert search_result_entry_response_to_dict_fast(decoded["payload"], None, None, False)["raw_attributes"] == \
        {"description": None}
    ours = lean_entry(decoded)
    assert ours is not None and ours["raw_attributes"] == {"description": []}
    assert values_of(ours["raw_attributes"]["description"]) is None


def test_a_ranged_attribute_carries_its_values_where_ldap3s_auto_range_collects_the_rest():
    ours = lean_entry(decode_message_fast(message(ENTRIES["ranged"])))
    assert ours is not None
    assert len(ours["attributes"]["member;range=0-1499"]) == 1500
    assert ours["attributes"]["member;range=0-1499"] == ours["raw_attributes"]["member;range=0-1499"]


def test_binary_guids_read_as_ads_text_form():
    ours = lean_entry(decode_message_fast(message(ENTRIES["binary"])))
    assert ours is not None
    assert values_of(ours["raw_attributes"]["objectGUID"], "objectGUID") == "{" + str(GUID) + "}"


def test_a_referral_goes_to_ldap3s_decoder():
    referral = tlv(0x73, octets(b"ldap://dc2.other.example/DC=other,DC=example"))
    decoded = decode_message_fast(message(referral))
    assert lean_entry(decoded) is None
    calls = []
    result = lean_decoder(lambda m: calls.append(m) or {"type": "searchResRef"})(decoded)
    assert calls == [decoded] and result == {"type": "searchResRef"}


def test_an_entry_with_controls_goes_to_ldap3s_decoder():
    control = tlv(0xA0, tlv(0x30, octets(b"1.2.840.113556.1.4.319")))
    decoded = decode_message_fast(message(ENTRIES["plain"], controls=control))
    assert decoded["controls"] and lean_entry(decoded) is None


def test_an_entry_in_an_unexpected_layout_falls_back_with_one_warning(caplog):
    odd = {"protocolOp": 4, "controls": None, "payload": [("not", "the", "layout")]}
    seen = []
    decode = lean_decoder(lambda m: seen.append(m) or {"type": "searchResEntry", "via": "ldap3"})
    with caplog.at_level("WARNING"):
        assert decode(odd) == {"type": "searchResEntry", "via": "ldap3"}
        decode(odd)
    assert seen == [odd, odd]
    assert sum("did not have the layout" in r.message for r in caplog.records) == 1


def test_another_ldap3_version_keeps_ldap3s_own_decoding(monkeypatch):
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", get_info=ldap3.NONE))
    original = conn.strategy.decode_response_fast
    monkeypatch.setattr(ldap3, "__version__", "2.10.0")
    decoding.lean_entries(conn)
    assert conn.strategy.decode_response_fast == original
    monkeypatch.setattr(ldap3, "__version__", "2.9.1")
    decoding.lean_entries(conn)
    assert conn.strategy.decode_response_fast != original


def test_a_ranged_part_ldap3_did_not_collect_is_refused_and_a_collected_one_dropped():
    from usersync.sources.errors import SourceQueryError
    from usersync.sources.ldap.directory import whole_attributes

    collected = {"dn": "CN=G", "raw_attributes": {"member": [b"a", b"b"], "member;range=0-1499": [b"a"]}}
    assert whole_attributes(collected, "ldaps://dc") == {"member": [b"a", b"b"]}
    partial = {"dn": "CN=G", "raw_attributes": {"member;range=0-1499": [b"a"]}}
    with pytest.raises(SourceQueryError, match=r"CN=G: ldaps://dc sent only part of the values of member"):
        whole_attributes(partial, "ldaps://dc")
