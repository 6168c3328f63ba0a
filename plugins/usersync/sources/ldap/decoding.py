"""Decoding LDAP search entries: only ``dn`` + raw bytes, decoded once by us, with ldap3's decoder as fallback.

ldap3 turns every entry into both raw bytes and formatted text (through per-value configuration lookups); this
source reads only the raw bytes. Measured at 50,000 entries: the formatted copy cost more than the BER
decoding. The lean decoder reads the BER tuples ldap3 2.9.1's ``decode_message_fast`` produces — an internal
layout — so it is only installed on that version (``pyproject.toml`` pins it), and any message that does not
have the expected shape goes through ldap3's own decoder instead. Ranged attributes (AD's MaxValRange: more
than 1,500 values come as ``member;range=0-1499``) carry their values in ``attributes`` too, where ldap3's
``auto_range`` collects the following ranges.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import ldap3
from ldap3.utils.conv import to_unicode

log = logging.getLogger(__name__)

#: ldap3 versions whose ``decode_message_fast`` layout ``lean_entry`` reads
LEAN_VERSIONS = frozenset({"2.9.1"})
SEARCH_RESULT_ENTRY = 4  # protocolOp of searchResEntry
#: AD's binary GUID attributes, read as AD's own text form ``{xxxxxxxx-…}``
GUID_ATTRIBUTES = frozenset({"objectguid", "invocationid"})

Message = dict[str, Any]


def decode_text(value: bytes) -> str:
    """A rootDSE value as text (hex when it is not UTF-8, e.g. a binary GUID)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def values_of(raw: list[bytes], name: str = "") -> str | list[str] | None:
    """An attribute's values as text. Bytes that are not UTF-8 become U+FFFD, which mapping refuses with the
    reason — never a hex string synced as if it were a name."""
    if not raw:
        return None
    if name.lower() in GUID_ATTRIBUTES:  # binary, little-endian GUID: keep AD's own text form
        return "{" + str(uuid.UUID(bytes_le=raw[0])) + "}"
    decoded = [v.decode("utf-8", "replace") for v in raw]
    return decoded[0] if len(decoded) == 1 else decoded


def lean_entry(message: Message) -> Message | None:
    """A search entry as ``dn`` + ``raw_attributes``; None when the message is not a plain entry in the layout
    this decoder knows (then ldap3 decodes it)."""
    if message.get("protocolOp") != SEARCH_RESULT_ENTRY or message.get("controls"):
        return None
    try:
        payload = message["payload"]
        raw_dn = payload[0][3]
        raw_attributes = {bytes(a[3][0][3]).decode("utf-8", "replace"): [bytes(v[3]) for v in a[3][1][3] or ()]
                          for a in payload[1][3] or ()}
    except (IndexError, KeyError, TypeError):
        return None
    if not isinstance(raw_dn, (bytes, bytearray, memoryview)):
        return None
    return {
        "type": "searchResEntry",
        "raw_dn": raw_dn,
        "dn": to_unicode(bytes(raw_dn), from_server=True),  # as ldap3 decodes it (UTF-8, then its fallbacks)
        "raw_attributes": raw_attributes,
        # ldap3's auto_range appends the next ranges of a ranged attribute here (and reads them back)
        "attributes": {name: list(values) for name, values in raw_attributes.items() if ";range=" in name},
    }


def lean_decoder(fallback: Callable[[Message], Message]) -> Callable[[Message], Message]:
    """ldap3's ``decode_response_fast`` replaced by ``lean_entry``, falling back to ``fallback`` (ldap3's own)."""
    warned = False

    def decode(message: Message) -> Message:
        nonlocal warned
        entry = lean_entry(message)
        if entry is not None:
            return entry
        if message.get("protocolOp") == SEARCH_RESULT_ENTRY and not message.get("controls") and not warned:
            warned = True
            log.warning("an LDAP entry did not have the layout the lean decoder reads; ldap3 decodes it instead")
        return fallback(message)

    return decode


def lean_entries(conn: ldap3.Connection) -> None:
    """Decode this connection's search entries with ``lean_entry`` (on the ldap3 versions it knows)."""
    if ldap3.__version__ not in LEAN_VERSIONS:
        log.info("ldap3 %s: entries are decoded by ldap3 itself (the lean decoder reads %s)",
                 ldap3.__version__, ", ".join(sorted(LEAN_VERSIONS)))
        return
    strategy = conn.strategy
    strategy.decode_response_fast = lean_decoder(strategy.decode_response_fast)
