"""Sections 3 (policies that depend on the user), 4, 5 and the planned 6 of an account's explanation, worked out
by the diff step from the users table it compared against and the change set it planned."""

from __future__ import annotations

from typing import Any

import pandas as pd

from usersync.plan.change_tables import ChangeTables
from usersync.rules import Rules
from usersync.rules.fields import Policy


def _fold(value: Any) -> str:
    return str(value).strip().casefold() if value is not None and not pd.isna(value) else ""


def _who(row: dict[str, Any]) -> str:
    owner = row.get("source") or "(none: a local user)"
    return f"user #{row['id']} {row.get('username')!r} ({row.get('domain')}\\{row.get('ad_username')}, owner {owner})"


#: ``find_user``'s answer when the account's name fits several users (one AD username in several domains)
AMBIGUOUS = "ambiguous"


def find_user(rules: Rules, existing: pd.DataFrame, facts: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The users-table row of the account: by anchor among this source's users, else by AD username + Domain —
    exactly one user, or none (``AMBIGUOUS`` when the name fits several)."""
    name = rules.source.name
    anchor, key, domain = _fold(facts.get("anchor")), _fold(facts.get("key")), _fold(facts.get("domain"))
    if rules.source.external_id_attribute and anchor:
        hit = existing[(existing["source"] == name).fillna(False).astype(bool)
                       & (existing["external_id"].map(_fold) == anchor)]
        if len(hit):
            return hit.iloc[-1].to_dict(), "anchor"
    if key:
        same = existing["ad_username"].map(_fold) == key
        if domain:
            same &= existing["domain"].map(_fold) == domain
        hit = existing[same]
        if len(hit) > 1:  # the same AD username in several domains: which one is meant cannot be known
            return None, AMBIGUOUS
        if len(hit):
            return hit.iloc[0].to_dict(), "key"
    return None, ""


def absent_sections(rules: Rules, existing: pd.DataFrame, facts: dict[str, Any]) -> dict[str, list[str]]:
    """An account the run does not sync (absent or out of scope): which user it would be, and its fate."""
    row, how = find_user(rules, existing, facts)
    why = "is not in the source" if not facts.get("found") else "is out of the rules' scope"
    if how == AMBIGUOUS:
        return {"match": [f"several users hold AD username {facts.get('key')!r} (in different domains): name the "
                          "account as DOMAIN\\user or by its anchor"],
                "claims": ["none: nothing is written"], "outcome": ["nothing to do until the account is named exactly"]}
    if row is None:
        return {"match": ["no user in the users table holds this account (by anchor or by AD username + Domain)"],
                "claims": ["none: nothing is written"],
                "outcome": [f"nothing to do: the account {why} and no user belongs to it"]}
    match = [f"by {'anchor' if how == 'anchor' else 'AD username + Domain'}: {_who(row)}"]
    if (row.get("source") or "") != rules.source.name:
        fate = f"nothing: the user is not owned by source {rules.source.name!r}, so this source never removes it"
    elif rules.source.on_demand:
        fate = "nothing: imports never remove users"
    else:
        policy = rules.safety.deletion
        fate = {"delete": "the next full run DELETES this user (safety.deletion: delete)",
                "disable": ("the user stays disabled (safety.deletion: disable; it already is)" if row.get("disabled_by_sync")
                            else "the next full run DISABLES this user (safety.deletion: disable)"),
                "keep": "the next full run keeps this user as it is (safety.deletion: keep)"}[policy]
        if rules.safety.grace:
            fate += f"; deleted {rules.safety.delete_after_days} day(s) after it left unless the account returns"
    return {"match": match, "claims": ["none: nothing is written"],
            "outcome": [f"not synced: the account {why}; this run deletes nobody", fate]}


def match_sections(rules: Rules, existing: pd.DataFrame, facts: dict[str, Any], plan: ChangeTables) -> dict[str, list[str]]:
    """A mapped account: the user it matches and why, each user-dependent policy, the claims, the planned outcome."""
    row, how = find_user(rules, existing, facts)
    src = rules.source
    match: list[str] = []
    fields: list[str] = []
    if row is None:
        match.append("no user holds this account (by anchor or by AD username + Domain): a new user is inserted")
    elif how == "anchor":
        match.append(f"by anchor {src.external_id_attribute} {facts.get('anchor')}: {_who(row)}")
        if _fold(row.get("ad_username")) != _fold(facts.get("key")):
            match.append(f"renamed in the source: AD username {row.get('ad_username')} → {facts.get('key')}; the user "
                         "keeps its row and every application-owned value")
    else:
        match.append(f"by AD username + Domain: {_who(row)}")
        owner, held_anchor = row.get("source") or "", _fold(row.get("external_id"))
        if not owner:
            match.append(f"adoption: the user has no owner; source {src.name!r} takes it over")
        elif owner != src.name:
            match.append(f"owned by source {owner!r}: this source never touches it")
        elif src.external_id_attribute and held_anchor and held_anchor != _fold(facts.get("anchor")):
            match.append(f"re-created in the source: the user holds {src.external_id_attribute} {row.get('external_id')}, "
                         f"this account {facts.get('anchor')}; source.recreated_accounts: {src.recreated_accounts} "
                         + ("— the new account takes over the user" if src.recreated_accounts == "adopt" else
                            "— the old user goes by the deletion policy and a new one is inserted"))
        elif src.external_id_attribute and not held_anchor:
            match.append(f"the user has no anchor yet: this run stores {src.external_id_attribute} {facts.get('anchor')}")
    for field, rule in rules.fields.items():
        if row is not None and rule.policy is Policy.ON_INSERT:
            fields.append(f"{field}: on_insert — not written now: the user exists (it holds {row.get(field)!r})")
        elif row is not None and rule.policy is Policy.DEFAULT_IF_EMPTY:
            current = row.get(field)
            empty = current is None or current == "" or (not isinstance(current, str) and pd.isna(current))
            fields.append(f"{field}: default_if_empty — " + ("written now: the users table holds no value" if empty
                                                             else f"not written now: the users table holds {current!r}"))
        elif row is None and rule.policy in (Policy.ON_INSERT, Policy.DEFAULT_IF_EMPTY):
            fields.append(f"{field}: {rule.policy.value} — written now: the user is new")
    reasons = [s["reason"] for s in plan.skipped.to_pylist()]
    refused = [r for r in reasons if "already used by" in r or "owned by source" in r or "re-created" in r]
    if refused:
        claims = [f"REFUSED: {r}" for r in refused]
    elif reasons:
        claims = ["not reached: the account is skipped before it claims anything (see fields)"]
    elif plan.held:
        claims = ["not reached: the user is held (see fields)"]
    else:
        claims = ["the username, sync key and numbers are free: no other user holds them"]
    return {"fields": fields, "match": match, "claims": claims, "outcome": planned(plan)}


def planned(plan: ChangeTables) -> list[str]:
    """What the change set does to the account's user (before apply, and whether it is a dry run)."""
    if plan.inserts.num_rows:
        row = plan.inserts.to_pylist()[0]
        values = ", ".join(f"{k}={v!r}" for k, v in row.items() if v not in (None, "", False))
        return [f"insert user {row.get('username')!r}: {values}"]
    if plan.updates.num_rows:
        upd = plan.updates.to_pylist()[0]
        return [f"update user #{upd['id']} {upd['username']!r}: "
                + ", ".join(f"{c}: {upd.get(f'old_{c}')!r} → {upd.get(f'new_{c}')!r}" for c in upd["changed"])]
    if plan.skipped.num_rows:
        return [f"skipped: {plan.skipped.to_pylist()[0]['reason']}"]
    if plan.held:
        return ["held: the user is left exactly as it is"]
    return ["unchanged: the users table already holds every value the rules give"]
