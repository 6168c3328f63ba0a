"""Active Directory specifics for reading less: nested group scoping and delta reads by uSNChanged.

Delta, as Microsoft documents it for polling ("Polling for Changes Using uSNChanged"): remember the DC's
``highestCommittedUSN`` read *before* a search; next time read only entries with a higher ``uSNChanged``, and
deleted objects (tombstones, Show-Deleted control) in ``CN=Deleted Objects``. A watermark belongs to one DC
database: another DC or a restored one (new ``invocationId``) means a full read.

What a delta read cannot see by itself, and how it is handled:
- an account that left the scope (moved to another OU, no longer matching the filter, disabled under
  ``exclude``): its own uSNChanged rises, so it is among the entries changed *anywhere* in the domain but not
  among those changed *in scope* — its anchor is reported as removed;
- group membership: ``memberOf`` is a back-link, so adding a user to a group raises the *group's* uSNChanged,
  not the user's. When any group of the ``member_of`` scope (nested groups included) changed since the
  watermark, the run reads in full instead (``scope_usn`` below), so joiners and leavers of the scope are found.
"""

from __future__ import annotations

from typing import Any

from ldap3.utils.conv import escape_filter_chars

from usersync.sources.errors import SourceQueryError

SHOW_DELETED = "1.2.840.113556.1.4.417"  # LDAP_SERVER_SHOW_DELETED_OID
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: transitive (nested) membership


def member_filter(groups: list[str]) -> str:
    """Members of any of ``groups``, nested groups included; '' when not scoped by group."""
    if not groups:
        return ""
    parts = "".join(f"(memberOf:{IN_CHAIN}:={escape_filter_chars(dn)})" for dn in groups)
    return parts if len(groups) == 1 else f"(|{parts})"


def changed_since(ldap_filter: str, usn: int) -> str:
    return f"(&{ldap_filter}(uSNChanged>={usn + 1}))"


def check_groups(directory, groups: list[str]) -> None:
    """Every scope group must exist: a mistyped DN would otherwise read as 'everyone left'."""
    for dn in groups:
        try:
            found = list(directory.search(dn, "(objectClass=group)", ["objectGUID"], scope="base"))
        except SourceQueryError:
            found = []
        if not found:
            raise SourceQueryError(f"member_of group {dn!r} does not exist (or is not a group) on {directory.url}; "
                                   "refusing to read its members as 'nobody'")


def dc_state(directory, groups: list[str]) -> dict[str, Any]:
    """Where the watermark comes from: the DC, its database identity, its USN now, and the scope groups' USN."""
    dse = {k.lower(): v for k, v in directory.root_dse(
        "highestCommittedUSN", "dsServiceName", "defaultNamingContext").items()}
    try:
        usn = int(dse["highestcommittedusn"][0])
        server = dse["dsservicename"][0]
        naming_context = dse["defaultnamingcontext"][0]
    except (KeyError, IndexError, ValueError):
        raise SourceQueryError(f"{directory.url} announces no highestCommittedUSN / dsServiceName: "
                               "not an Active Directory DC; remove 'delta' from the rules") from None
    settings = list(directory.search(server, "(objectClass=*)", ["invocationId"], scope="base"))
    invocation = settings[0].get("invocationId") if settings else None
    if not invocation:
        raise SourceQueryError(f"cannot read the invocationId of {server} on {directory.url}")
    scope_usn = 0
    for dn in groups:
        nested = directory.search(naming_context, f"(|(distinguishedName={escape_filter_chars(dn)})"
                                  f"(&(objectClass=group)(memberOf:{IN_CHAIN}:={escape_filter_chars(dn)})))",
                                  ["uSNChanged"])
        scope_usn = max([scope_usn, *(int(g.get("uSNChanged") or 0) for g in nested)])
    return {"server": server, "invocation_id": invocation, "usn": usn, "naming_context": naming_context,
            "scope_usn": scope_usn}


def removed_anchors(directory, in_scope: set[str], since: int, naming_context: str) -> tuple[list[str], int]:
    """objectGUIDs of accounts gone since USN ``since``: deleted (tombstones) or changed and now out of scope.

    ``in_scope``: the objectGUIDs of the changed entries the delta read returned. Returns (anchors, entries
    read); only ``objectGUID`` of changed entries is read: a few per change.
    """
    read = 0

    def guids(search_base: str, ldap_filter: str, controls=None) -> set[str]:
        nonlocal read
        found = set()
        for record in directory.search(search_base, ldap_filter, ["objectGUID"], controls=controls):
            read += 1
            if record.get("objectGUID"):
                found.add(record.get("objectGUID"))
        return found

    anywhere = guids(naming_context, changed_since("(objectClass=user)", since))
    deleted = guids(f"CN=Deleted Objects,{naming_context}", changed_since("(isDeleted=TRUE)", since),
                    controls=[(SHOW_DELETED, True, None)])
    return sorted((anywhere - in_scope) | deleted), read
