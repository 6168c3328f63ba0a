"""Rules → target rows: turns each source record into the values the rules give its user.

Mapping does not look at the users table; it only computes, per field, the value the rule yields
(``keep`` fields yield nothing). A record that cannot be mapped (no key, bad e-mail, a number that is not a
number, a value too long for its column) becomes a ``Skipped`` entry naming the account and the reason; it is
never half-mapped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from usersync.core.users_table import users
from usersync.plan.changes import Skipped
from usersync.rules import Rules
from usersync.rules.fields import FIELDS, Kind, Policy
from usersync.rules.transforms import Chain, TransformError, compile_chain, run_chain
from usersync.sources.record import SourceRecord

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER = re.compile(r"^\+?[0-9*#]+$")
_KEY_LIMITS = (getattr(users.c.ad_username.type, "length", None), getattr(users.c.domain.type, "length", None))


@dataclass(frozen=True)
class MappedUser:
    """A source account with the values its rules produce (``keep`` fields absent)."""

    account: str
    ad_username: str
    domain: str
    values: dict[str, Any]
    external_id: str | None = None
    #: an account disabled in the source under ``disabled_accounts: skip``: its user is left as it is
    hold: bool = False


class RecordError(ValueError):
    """Why one record cannot be mapped."""


@dataclass(frozen=True)
class _FieldStep:
    """One field's rule, compiled once per run: transforms looked up, column limit read."""

    field: str
    policy: Policy
    value: Any
    attribute: str | None
    chain: Chain
    prefix: str | None
    kind: Kind
    limit: int | None


def compile_fields(rules: Rules) -> list[_FieldStep]:
    """The rules' non-``keep`` fields as ready-to-run steps (in the rules' order)."""
    steps = []
    for field, rule in rules.fields.items():
        if rule.policy is Policy.KEEP:
            continue
        steps.append(_FieldStep(field, rule.policy, rule.value, rule.attribute, compile_chain(rule.transforms), rule.prefix,
                                FIELDS[field].kind, getattr(users.c[field].type, "length", None)))
    return steps


def _field_value(step: _FieldStep, record: SourceRecord) -> Any:
    if step.value is not None:
        return step.value
    if step.attribute is None:
        return None
    value: Any = record.get(step.attribute)
    if value is None:
        return None
    try:
        value = run_chain(value, step.chain)
    except TransformError as exc:
        raise RecordError(f"{step.field}: {exc} (from {step.attribute})") from None
    if isinstance(value, str):
        value = clean_text(step.field, value.strip()) or None
    if value is not None and step.policy is Policy.PREFIX:
        value = f"{step.prefix}{value}"
    return value


def clean_text(what: str, value: str) -> str:
    """A source value as stored: Unicode NFC (so 'José' typed two ways is one name); refused with the reason
    when it holds control characters (NUL, line breaks, tabs) or bytes that were not UTF-8."""
    bad = _CONTROL.search(value)
    if bad:
        raise RecordError(f"{what}: contains control character U+{ord(bad.group()):04X} "
                          f"({_CONTROL_NAMES.get(bad.group(), 'control character')})")
    if "\ufffd" in value:
        raise RecordError(f"{what}: not valid UTF-8 in the source")
    return unicodedata.normalize("NFC", value)


def _nfc(value: str | None) -> str | None:
    return unicodedata.normalize("NFC", value) if value else value


_CONTROL_NAMES = {"\x00": "NUL", "\n": "line break", "\r": "line break", "\t": "tab"}


def _check(step: _FieldStep, value: Any) -> None:
    if value is None or step.kind is Kind.BOOL:
        return
    if step.kind is Kind.EMAIL and not _EMAIL.match(value):
        raise RecordError(f"{step.field}: not an e-mail address: {value!r}")
    if step.kind is Kind.NUMBER and not _NUMBER.match(value):
        raise RecordError(f"{step.field}: not a phone number: {value!r} (add a 'digits' transform?)")
    if step.limit and len(value) > step.limit:
        raise RecordError(f"{step.field}: {len(value)} characters, the column holds {step.limit}")


def _sync_key(rules: Rules, record: SourceRecord) -> tuple[str | None, str | None]:
    """(account name, Domain) of a record: the Domain is the rules' constant or read from the record."""
    src = rules.source
    domain = src.domain if src.domain is not None else record.get(src.domain_attribute or "")
    return record.get(src.key_attribute), domain


def account_identity(rules: Rules, record: SourceRecord) -> tuple[str | None, str | None, str | None]:
    """(AD username, Domain, anchor) of a record as the users table would hold them, mapped or not."""
    key, domain = (_nfc(v) for v in _sync_key(rules, record))
    return key, domain, _anchor(rules, record)


def is_disabled(rules: Rules, record: SourceRecord) -> bool:
    """Whether the source marks this account disabled: AD's userAccountControl bit 2, CUCM status 2, Entra ID's
    accountEnabled false."""
    attribute = rules.source.disabled_attribute
    value = record.get(attribute) if attribute else None
    if value is None:
        return False
    try:
        return rules.source.is_disabled(value)
    except ValueError:
        raise RecordError(f"{attribute} is not a number: {value!r}") from None


def _anchor(rules: Rules, record: SourceRecord) -> str | None:
    attribute = rules.source.external_id_attribute
    return record.get(attribute) if attribute else None


def map_record(rules: Rules, record: SourceRecord, steps: list[_FieldStep] | None = None) -> MappedUser:
    """Map one record or raise ``RecordError`` with the reason (``steps``: ``compile_fields(rules)``)."""
    if record.problem:
        raise RecordError(record.problem)
    src = rules.source
    ad_username, domain = _sync_key(rules, record)
    if not ad_username:
        raise RecordError(f"no {src.key_attribute} (the sync key)")
    if not domain:
        raise RecordError(f"no {src.domain_attribute} (the Domain half of the sync key)")
    ad_username, domain = clean_text(src.key_attribute, ad_username), clean_text("domain", domain)
    for column, value, limit in (("ad_username", ad_username, _KEY_LIMITS[0]), ("domain", domain, _KEY_LIMITS[1])):
        if limit is not None and len(value) > limit:
            raise RecordError(f"{column} is longer than {limit} characters")
    if (src.disabled_accounts == "skip" and is_disabled(rules, record)) or src.held(record.get):
        return MappedUser(record.account, ad_username, domain, {}, _anchor(rules, record), hold=True)
    values: dict[str, Any] = {}
    for step in steps if steps is not None else compile_fields(rules):
        value = _field_value(step, record)
        _check(step, value)
        values[step.field] = value
    if not values.get("username"):
        attr = rules.rule("username").attribute
        raise RecordError(f"no username (attribute {attr} is empty)")
    return MappedUser(record.account, ad_username, domain, values, _anchor(rules, record))


def map_records(rules: Rules, records: Iterable[SourceRecord]) -> tuple[list[MappedUser], list[Skipped]]:
    """Map every record; unmappable ones become ``Skipped`` with their account and reason."""
    steps = compile_fields(rules)
    mapped: list[MappedUser] = []
    skipped: list[Skipped] = []
    for record in records:
        try:
            mapped.append(map_record(rules, record, steps))
        except RecordError as exc:
            key, domain = (_nfc(v) for v in _sync_key(rules, record))
            skipped.append(Skipped(record.account, str(exc), key if domain else None, domain if key else None,
                                   _anchor(rules, record)))
    return mapped, skipped
