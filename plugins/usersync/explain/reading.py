"""Sections 1 and 2 of an account's explanation: what the source returned for it, and each scope test."""

from __future__ import annotations

from typing import Any

from usersync.plan.mapping import account_identity
from usersync.rules import Rules
from usersync.rules.model import looks_secret
from usersync.sources.base import OneAccount


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
    scope = [check.line() for check in found.checks] or ["no scope test applies: every account the source returns is in scope"]
    if not found.in_scope:  # the rules do not sync it: whoever may read the DAG's runs sees the verdict, not its values
        return {"read": [asked, "entry: found; its values are not shown — the rules' scope does not take it in"],
                "scope": [*scope, "OUT OF SCOPE: a full run reads this account as absent"]}
    read = [asked, f"entry: {found.record.account}"]
    for attribute in dict.fromkeys([*attributes, *(c for c in _scope_attributes(rules) if c)]):
        if looks_secret(attribute):  # the rules refuse to read these; never shown whatever an older file says
            read.append(f"{attribute}: (not shown: a secret)")
            continue
        value = found.record.attributes.get(attribute)
        if value is None:
            value = next((v for k, v in found.record.attributes.items() if k.lower() == attribute.lower()), None)
        read.append(f"{attribute}: {shown(value)}")
    return {"read": read, "scope": [*scope, "in scope: the rules take this account in"]}


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
