"""Sections 3 (policies that depend on the user), 4, 5 and the planned 6 of an account's explanation, worked out
by the diff step from the users table it compared against and the change set it planned."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from usersync.plan.change_tables import ChangeTables
from usersync.plan.changes import SkipCode
from usersync.rules import Rules
from usersync.rules.fields import Policy


def _who(row: dict[str, Any]) -> str:
    owner = row.get("source") or "(none: a local user)"
    return f"user #{row['id']} {row.get('username')!r} ({row.get('domain')}\\{row.get('ad_username')}, owner {owner})"


def _row(existing: pd.DataFrame, decided: dict[str, Any]) -> dict[str, Any] | None:
    """The users-table row of the user the diff matched (None: it matched none)."""
    if decided.get("user") is None:
        return None
    hit = existing[existing["id"] == decided["user"]]
    return hit.iloc[0].to_dict() if len(hit) else None


def _decided(plan: ChangeTables | None) -> dict[str, Any]:
    return (plan.explained if plan is not None else None) or {"how": "", "user": None}


def absent_sections(rules: Rules, existing: pd.DataFrame, facts: dict[str, Any],
                    plan: ChangeTables | None) -> dict[str, list[str]]:
    """An account the run does not sync (absent or out of scope): which user the diff found it to be, and what
    the leavers' rules would do with that user."""
    decided = _decided(plan)
    row, how = _row(existing, decided), decided.get("how")
    why = "is not in the source" if not facts.get("found") else "is out of the rules' scope"
    if how == "ambiguous":
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
        fate = _fate(decided.get("if_gone") or {})
    return {"match": match, "claims": ["none: nothing is written"],
            "outcome": [f"not synced: the account {why}; this run deletes nobody", fate]}


def match_sections(rules: Rules, existing: pd.DataFrame, facts: dict[str, Any], plan: ChangeTables) -> dict[str, list[str]]:
    """A mapped account: the user the diff matched and why, each user-dependent policy, the claims, the planned
    outcome."""
    decided = _decided(plan)
    row, how = _row(existing, decided), decided.get("how")
    src = rules.source
    match: list[str] = []
    fields: list[str] = []
    recreated = decided.get("recreated")
    if row is None and recreated:
        old = _row(existing, recreated) or {"id": recreated["user"]}
        match.append(f"re-created in the source: {_who(old)} holds {src.external_id_attribute} {recreated['anchor']}, "
                     f"this account {facts.get('anchor')}; source.recreated_accounts: {src.recreated_accounts} — the "
                     "old user goes by the deletion policy and a new one is inserted")
    elif row is None:
        match.append("no user holds this account (by anchor or by AD username + Domain): a new user is inserted")
    elif how == "anchor":
        match.append(f"by anchor {src.external_id_attribute} {facts.get('anchor')}: {_who(row)}")
        if decided.get("renamed"):
            match.append(f"renamed in the source: AD username {row.get('ad_username')} → {facts.get('key')}; the user "
                         "keeps its row and every application-owned value")
    else:
        match.append(f"by AD username + Domain: {_who(row)}")
        owner = row.get("source") or ""
        if not owner:
            match.append(f"adoption: the user has no owner; source {src.name!r} takes it over")
        elif owner != src.name:
            match.append(f"owned by source {owner!r}: this source never touches it")
        elif decided.get("adopted"):
            match.append(f"re-created in the source: the user holds {src.external_id_attribute} {row.get('external_id')}, "
                         f"this account {facts.get('anchor')}; source.recreated_accounts: adopt — the new account "
                         "takes over the user")
        elif decided.get("no_anchor_yet"):
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
    skips = plan.skipped.to_pylist()
    refused = [s["reason"] for s in skips if s.get("code") in SkipCode.CLAIMS]
    cases = plan.cases.to_pylist()
    held = [f"HELD ASIDE: {c['field']} {c['value']} is already used by user {c['holder']!r}: the user is written "
            f"without it, and a case waits (it closes by itself once the holder no longer has it)"
            for c in cases if c["kind"] == "number"]
    proposed = [f"WAITING: may be an existing local user ({', '.join(repr(x['username']) for x in json.loads(c['detail'])['candidates'])}); "
                "not inserted or linked until someone decides the case" for c in cases if c["kind"] == "match"]
    if refused:
        claims = [f"REFUSED: {r}" for r in refused]
    elif held or proposed:
        claims = held + proposed
    elif skips:
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
    if plan.cases.num_rows:
        return ["waiting: a case decides whether the account is an existing user (the cases page)"]
    if plan.held:
        return ["held: the user is left exactly as it is"]
    return ["unchanged: the users table already holds every value the rules give"]


def _fate(if_gone: dict[str, Any]) -> str:
    """What the leavers' rules decided for the user if its account were gone (``leavers.fate``), in words."""
    policy = if_gone.get("policy", "")
    if if_gone.get("held"):
        return f"the next full run leaves this user as it is: {if_gone['held']}"
    if if_gone.get("deleted"):
        text = f"the next full run DELETES this user (safety.deletion: {policy})"
    elif if_gone.get("disabled"):
        text = f"the next full run DISABLES this user (safety.deletion: {policy})"
    elif policy == "disable":
        text = "the user stays disabled (safety.deletion: disable; it already is)"
    else:
        text = f"the next full run keeps this user as it is (safety.deletion: {policy})"
    if if_gone.get("until"):
        text += f"; deleted from {if_gone['until'][:16].replace('T', ' ')} UTC on, unless the account returns"
    return text
