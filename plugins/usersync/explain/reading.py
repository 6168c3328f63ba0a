"""Sections 1 and 2 of an account's explanation: what the source returned for it, and each scope test."""

from __future__ import annotations

import re
from typing import Any

from usersync.plan.mapping import account_identity
from usersync.rules import Rules
from usersync.sources.base import OneAccount

#: attribute names never shown, whatever the rules read (credentials have no place in a report)
_SECRET = re.compile(r"pass|pwd|secret|credential|token", re.I)


def shown(value: Any) -> str:
    """A raw value as the report shows it: text quoted, several values listed, none as ``(empty)``."""
    if value is None or value == "" or value == []:
        return "(empty)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return repr(value)


def read_sections(rules: Rules, found: OneAccount, attributes: list[str], where: str) -> dict[str, list[str]]:
    """What was asked of the source and what it returned (each attribute the rules use, raw), and the scope."""
    asked = (f"asked {where} for {found.asked!r}: {found.found_by} — {found.requests} request(s), "
             f"{found.entries} entr{'y' if found.entries == 1 else 'ies'} returned")
    if found.record is None:
        return {"read": [asked, "the source holds no such account"],
                "scope": ["not tested: there is no entry to test"]}
    read = [asked, f"entry: {found.record.account}"]
    for attribute in dict.fromkeys([*attributes, *(c for c in _scope_attributes(rules) if c)]):
        if _SECRET.search(attribute):
            read.append(f"{attribute}: (not shown: a secret)")
            continue
        value = found.record.attributes.get(attribute)
        if value is None:
            value = next((v for k, v in found.record.attributes.items() if k.lower() == attribute.lower()), None)
        read.append(f"{attribute}: {shown(value)}")
    scope = [check.line() for check in found.checks] or ["no scope test applies: every account the source returns is in scope"]
    scope.append("in scope: the rules take this account in" if found.in_scope
                 else "OUT OF SCOPE: a full run reads this account as absent")
    return {"read": read, "scope": scope}


def _scope_attributes(rules: Rules) -> list[str | None]:
    return [rules.source.disabled_attribute if rules.source.disabled_accounts != "import" else None]


def identity(rules: Rules, found: OneAccount) -> dict[str, Any]:
    """What later steps match the account by, read or not: key, Domain, anchor, found, in scope."""
    if found.record is not None:
        key, domain, anchor = account_identity(rules, found.record)
    else:  # not in the source: the users table may still hold a user by the name (or anchor) the admin gave
        key, domain, anchor = found.asked, rules.source.domain, found.asked
    return {"asked": found.asked, "found": found.record is not None, "in_scope": found.in_scope,
            "key": key, "domain": domain, "anchor": anchor, "requests": found.requests, "entries": found.entries}
