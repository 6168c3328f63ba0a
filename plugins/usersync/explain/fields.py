"""Section 3 of an account's explanation: each field's rule, the attribute's value through every transform, the
final value — or why the account cannot be mapped, or why its user is held."""

from __future__ import annotations

from typing import Any

from usersync.explain.reading import shown
from usersync.plan.mapping import RecordError, clean_text, is_disabled, map_record
from usersync.rules import Rules
from usersync.rules.fields import Policy
from usersync.rules.model import FieldRule
from usersync.rules.transforms import TransformError, compile_chain
from usersync.sources.record import SourceRecord

#: when each policy writes, in the words of the explanation
WHEN = {
    Policy.IMPORT: "written on insert and whenever the source value differs",
    Policy.PREFIX: "written on insert and whenever the source value differs",
    Policy.ON_INSERT: "written only when the user is inserted",
    Policy.DEFAULT_IF_EMPTY: "written only while the users table holds no value",
    Policy.KEEP: "never written by the sync: the application owns it",
}


def trace(rule: FieldRule, record: SourceRecord) -> str:
    """``attribute = raw → transform → value … → final`` for one field (a constant: its value)."""
    if rule.value is not None:
        return f"constant {shown(rule.value)}"
    if rule.attribute is None:
        return "no value"
    value: Any = record.get(rule.attribute)
    steps = [f"{rule.attribute} = {shown(value)}"]
    if value is None:
        return steps[0] + " → no value"
    for (_name, transform, arg), spec in zip(compile_chain(rule.transforms), rule.transforms, strict=True):
        try:
            value = transform(value, arg) if isinstance(value, str) else None
        except TransformError as exc:
            return " → ".join(steps) + f" → {spec}: ERROR {exc}"
        steps.append(f"{spec} → {shown(value)}")
    if isinstance(value, str):
        try:
            value = clean_text(rule.attribute, value.strip()) or None
        except RecordError as exc:
            return " → ".join(steps) + f" → ERROR {exc}"
    if value is not None and rule.policy is Policy.PREFIX and rule.prefix:
        steps.append(f"prefix {rule.prefix!r} → {shown(f'{rule.prefix}{value}')}")
    return " → ".join(steps)


def field_sections(rules: Rules, record: SourceRecord) -> dict[str, list[str]]:
    """The sync key, each field (its policy, its value's way, when it is written), and the mapping's verdict."""
    src = rules.source
    domain_from = "the rules' constant" if src.domain is not None else f"attribute {src.domain_attribute}"
    lines = [f"sync key: AD username {shown(record.get(src.key_attribute))} (attribute {src.key_attribute}), "
             f"Domain {shown(src.domain if src.domain is not None else record.get(src.domain_attribute or ''))} "
             f"({domain_from})"]
    if src.external_id_attribute:
        lines.append(f"anchor: {src.external_id_attribute} = {shown(record.get(src.external_id_attribute))}")
    for field, rule in rules.fields.items():
        if rule.policy is Policy.KEEP:
            lines.append(f"{field}: keep — {WHEN[Policy.KEEP]}")
            continue
        lines.append(f"{field}: {rule.policy.value}, {trace(rule, record)} ({WHEN[rule.policy]})")
    try:
        mapped = map_record(rules, record)
    except RecordError as exc:
        lines.append(f"result: NOT MAPPED — {exc}; the account is skipped (listed in every report until fixed) "
                     "and its user, if any, is kept")
        return {"fields": lines}
    if mapped.hold:
        why = (f"disabled in the source ({src.disabled_attribute}) and disabled_accounts: skip"
               if src.disabled_accounts == "skip" and is_disabled(rules, record) else src.held(record.get))
        lines.append(f"result: HELD — {why}: its user is left exactly as it is (never inserted, updated or removed)")
    else:
        lines.append("result: mapped")
    return {"fields": lines}
