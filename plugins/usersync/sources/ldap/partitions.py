"""Splitting an LDAP read into disjoint, exhaustive partitions that can be read in parallel.

Partition by the **last character** of the key attribute (``sAMAccountName``): the 36 letters and digits are
dealt round-robin to the partitions, compared case-insensitively by the server itself (final-substring
filters ``(attr=*x)``, which Active Directory and OpenLDAP both evaluate with the attribute's own matching
rule), and partition 0 also takes every entry whose key ends in anything else (non-ASCII, punctuation) or has no
key at all: ``(!(|…all 36…))``. Every entry matches exactly one partition, whatever its key.

Why the last character: first characters cluster (``user000123``, ``j.smith``, one OU's prefix), last
characters of account names spread evenly; a range of the key would need an ORDERING matching rule, which
AD-like schemas often lack for ``sAMAccountName``. Each partition is its own paged search, so the server's page
cap (AD: 1000) holds for each.
"""

from __future__ import annotations

import string

ALPHABET = string.digits + string.ascii_lowercase


def final_chars(index: int, count: int) -> str:
    """The characters partition ``index`` of ``count`` takes (besides the rest, for partition 0)."""
    return ALPHABET[index::count]


def partition_filter(attribute: str, index: int, count: int) -> str | None:
    """The LDAP filter of partition ``index`` of ``count``; None when there is one partition (no split)."""
    if count <= 1:
        return None
    if not 0 <= index < count:
        raise ValueError(f"partition {index} of {count} does not exist")
    mine = [f"({attribute}=*{c})" for c in final_chars(index, count)]
    if index == 0:
        everything = "".join(f"({attribute}=*{c})" for c in ALPHABET)
        mine.append(f"(!(|{everything}))")
    return f"(|{''.join(mine)})"
