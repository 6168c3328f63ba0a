"""One LDAP / AD account on demand: found by the server with an escaped equality filter (the key, the UPN, the
objectGUID anchor) or read at its DN, from the naming context — not from the rules' object path, so an account
outside the scope is still found and the explanation can say which test left it out. Each scope test (object
path, filter, disabled state, group membership with nested groups) is then a base search on that one entry: the
server answers it exactly as it answers the full read.
"""

from __future__ import annotations

import re
import uuid

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from usersync.sources.base import OneAccount, ScopeCheck
from usersync.sources.errors import SourceQueryError
from usersync.sources.ldap import ad_delta
from usersync.sources.ldap.directory import LdapDirectory
from usersync.sources.ldap.spec import LdapSourceSpec
from usersync.sources.record import SourceRecord

_DN_START = re.compile(r"^\s*[A-Za-z][A-Za-z0-9-]*\s*=")
_GUID = re.compile(r"^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$")


def dn_parts(dn: str) -> list[tuple[str, str]]:
    """A DN as (attribute, value) pairs, case-folded, for comparing DNs written with other spacing or case."""
    return [(a.strip().lower(), v.strip().lower()) for a, v, _sep in parse_dn(dn, escape=False, strip=True)]


def is_dn(text: str) -> bool:
    if not _DN_START.match(text):
        return False
    try:
        return bool(dn_parts(text))
    except LDAPInvalidDnError:
        return False


def under(dn: str, base: str, scope: str = "subtree") -> bool:
    """Whether ``dn`` lies in the search ``base`` (``level``: directly below it); a blank base is the whole tree."""
    if not base.strip():
        return True
    entry, parent = dn_parts(dn), dn_parts(base)
    if len(entry) <= len(parent) or entry[len(entry) - len(parent):] != parent:
        return False
    return scope != "level" or len(entry) == len(parent) + 1


def guid_filter_value(text: str) -> str:
    """An objectGUID in its text form as the escaped bytes an LDAP filter compares (AD stores it little-endian)."""
    return "".join(f"\\{b:02x}" for b in uuid.UUID(text.strip("{}")).bytes_le)


def equality_filter(spec: LdapSourceSpec, asked: str) -> str:
    """The filter that finds the account ``asked`` names: its key, its UPN on AD, or its objectGUID."""
    value = escape_filter_chars(asked)
    clauses = [f"({spec.key_attribute}={value})"]
    if spec.type == "active_directory" and spec.key_attribute.lower() != "userprincipalname":
        clauses.append(f"(userPrincipalName={value})")
    anchor = (spec.external_id_attribute or "").lower()
    if anchor == "objectguid":  # binary: compared as its bytes, and only when a GUID was given
        if _GUID.match(asked):
            clauses.append(f"(objectGUID={guid_filter_value(asked)})")
    elif anchor and anchor != spec.key_attribute.lower():
        clauses.append(f"({spec.external_id_attribute}={value})")
    return clauses[0] if len(clauses) == 1 else f"(|{''.join(clauses)})"


def find(directory: LdapDirectory, spec: LdapSourceSpec, asked: str, base: str,
         attributes: list[str]) -> tuple[SourceRecord | None, str]:
    """The one entry ``asked`` names, and how the server was asked; SourceQueryError when it names several."""
    if is_dn(asked):
        try:
            found = list(directory.search(asked, "(objectClass=*)", attributes, 2, "base"))
        except SourceQueryError as exc:
            if "does not exist" not in str(exc):
                raise
            found = []
        return (found[0] if found else None), f"the entry at {asked} (a base search)"
    context = directory.naming_context() or ""
    root = base if base and context and not under(base, context) and base.lower() != context.lower() else context
    ldap_filter = equality_filter(spec, asked)
    found = list(directory.search(root, ldap_filter, attributes, 2, "subtree"))
    how = f"filter {ldap_filter} from {root or 'the root of the forest'}"
    if len(found) > 1:
        raise SourceQueryError(f"{asked!r} names more than one entry ({'; '.join(r.account for r in found)}): "
                               "give the account's DN instead")
    return (found[0] if found else None), how


def _matches(directory: LdapDirectory, dn: str, ldap_filter: str) -> bool:
    """The server's own answer: does the entry at ``dn`` match ``ldap_filter``?"""
    return any(True for _ in directory.search(dn, ldap_filter, ["1.1"], 1, "base"))


def scope_checks(directory: LdapDirectory, spec: LdapSourceSpec, record: SourceRecord, base: str) -> list[ScopeCheck]:
    """Each test of the rules' scope on the entry: object path, filter, disabled state, groups."""
    dn = record.account
    checks = [ScopeCheck("object path", under(dn, base, spec.scope),
                         f"{dn} {'lies' if under(dn, base, spec.scope) else 'does not lie'} "
                         f"{'directly ' if spec.scope == 'level' else ''}under {base or 'the root of the forest'}")]
    passed = _matches(directory, dn, spec.filter)
    checks.append(ScopeCheck("filter", passed, f"the entry {'matches' if passed else 'does not match'} "
                                               f"{spec.filter} (asked of the server)"))
    disabled = spec.disabled_filter()
    if disabled and spec.disabled_accounts != "import":
        value = record.get(spec.disabled_attribute or "")
        off = _matches(directory, dn, disabled)
        verdict = {"exclude": "left out (disabled_accounts: exclude)",
                   "skip": "its user is left exactly as it is (disabled_accounts: skip)"}[spec.disabled_accounts]
        checks.append(ScopeCheck("disabled accounts", not off or spec.disabled_accounts == "skip",
                                 f"disabled in the source ({spec.disabled_attribute} {value}): {verdict}" if off
                                 else f"enabled in the source ({spec.disabled_attribute} {value})"))
    if spec.member_of:
        member = [g for g in spec.member_of if _matches(directory, dn, ad_delta.member_filter([g]))]
        checks.append(ScopeCheck(
            "groups", bool(member),
            f"member of {', '.join(member)} (nested groups included)" if member else
            f"not a member of {' or '.join(spec.member_of)}, directly or through nested groups"))
    return checks


def read_one(directory: LdapDirectory, spec: LdapSourceSpec, asked: str, base: str,
             attributes: list[str]) -> OneAccount:
    """The account ``asked`` names and its scope tests, counting what the server was asked and returned."""
    extra = [spec.disabled_attribute] if spec.disabled_attribute and spec.disabled_attribute not in attributes else []
    searches, entries = directory.searches, directory.entries
    record, how = find(directory, spec, asked, base, attributes + extra)
    found = OneAccount(asked, record, how, requests=directory.searches - searches, entries=directory.entries - entries)
    if record is not None:
        found.checks = scope_checks(directory, spec, record, base)
    return found
