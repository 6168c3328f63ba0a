"""Target fields and which rule choices each allows (the capability matrix).

Not every choice fits every field: there is no point in giving every
user the same personal address, and a unique phone number cannot have one fixed insert-time value. This table
is the single place that knowledge lives; the rules validator and the docs read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Policy(str, Enum):
    """The per-field choices an admin has, plus ``default_if_empty`` (LSC defaultValues / midPoint weak)."""

    ON_INSERT = "on_insert"  # only when the user is created; never overwritten later
    IMPORT = "import"  # from a source attribute, on insert and on every update
    PREFIX = "prefix"  # like import, with a fixed prefix before the (transformed) attribute value
    KEEP = "keep"  # blank on insert, never written by sync
    DEFAULT_IF_EMPTY = "default_if_empty"  # fills the field only while it is empty


class Kind(str, Enum):
    TEXT = "text"
    NUMBER = "number"  # phone number, unique across the number columns
    EMAIL = "email"
    BOOL = "bool"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    policies: frozenset[Policy]
    #: whether a constant (on_insert value, default_if_empty value) makes sense for this field
    constants: bool
    required: bool = False
    label: str = ""


P = Policy
_SOURCE = frozenset({P.IMPORT, P.PREFIX, P.KEEP, P.DEFAULT_IF_EMPTY})
_SHARED = frozenset({P.ON_INSERT, P.IMPORT, P.KEEP, P.DEFAULT_IF_EMPTY})

FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("username", Kind.TEXT, frozenset({P.IMPORT, P.PREFIX}), False, True, "Login name"),
        FieldSpec("first_name", Kind.TEXT, frozenset({P.IMPORT, P.KEEP, P.DEFAULT_IF_EMPTY}), False, label="First name"),
        FieldSpec("last_name", Kind.TEXT, frozenset({P.IMPORT, P.KEEP, P.DEFAULT_IF_EMPTY}), False, label="Last name"),
        FieldSpec("email", Kind.EMAIL, frozenset({P.IMPORT, P.KEEP, P.DEFAULT_IF_EMPTY}), False, label="E-mail"),
        FieldSpec("department", Kind.TEXT, _SHARED, True, label="Department"),
        FieldSpec("extension", Kind.NUMBER, _SOURCE, False, label="First extension number"),
        FieldSpec("alias_extension", Kind.NUMBER, _SOURCE, False, label="Alias extension"),
        FieldSpec("voicemail_number", Kind.NUMBER, _SOURCE, False, label="Voicemail number"),
        FieldSpec("fax_number", Kind.NUMBER, _SOURCE, False, label="Fax number"),
        FieldSpec("mobile", Kind.TEXT, _SOURCE, False, label="Mobile"),
        FieldSpec("language", Kind.TEXT, _SHARED, True, label="Language"),
        FieldSpec("personal_address", Kind.TEXT, frozenset({P.IMPORT, P.KEEP, P.DEFAULT_IF_EMPTY}), False, label="Personal address"),
        FieldSpec("enabled", Kind.BOOL, frozenset({P.ON_INSERT, P.IMPORT, P.KEEP}), True, label="Enabled"),
        FieldSpec("voicemail_enabled", Kind.BOOL, frozenset({P.ON_INSERT, P.IMPORT, P.KEEP}), True, label="Voicemail enabled"),
        FieldSpec("call_recording_license", Kind.BOOL, frozenset({P.ON_INSERT, P.IMPORT, P.KEEP}), True, label="Call recording licence"),
        FieldSpec("hidden_from_directory", Kind.BOOL, frozenset({P.ON_INSERT, P.IMPORT, P.KEEP}), True, label="Hidden from directory"),
    )
}

#: Fields that hold unique numbers.
NUMBER_FIELDS = tuple(n for n, f in FIELDS.items() if f.kind is Kind.NUMBER)
BOOL_FIELDS = tuple(n for n, f in FIELDS.items() if f.kind is Kind.BOOL)


def capability_matrix() -> list[tuple[str, str, list[str], bool]]:
    """(field, kind, allowed policies, constants allowed) rows, for docs and the CLI."""
    return [
        (f.name, f.kind.value, sorted(p.value for p in f.policies), f.constants) for f in FIELDS.values()
    ]
