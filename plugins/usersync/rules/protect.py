"""Protected users: conditions on users-table values under which no sync deletes or disables a user.

A deleted user takes voicemail, recordings and licences along; some users (the board, emergency extensions,
service accounts the application flags) must never go because of a directory mistake. Each entry of the rules'
``protect:`` list is one condition on one field; a user meeting any of them is protected, as is every user
whose ``sync_protected`` column the application (or an admin) set. Protected users still receive updates
unless their entry says ``updates: false``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from usersync.core.models import StrictModel
from usersync.rules.fields import FIELDS, Kind

#: the users-table column the application sets per user; always honoured, with or without a ``protect:`` list
COLUMN = "sync_protected"


class ProtectRule(StrictModel):
    """``field`` meets exactly one of ``equals`` / ``in`` / ``matches`` (a whole-value regular expression) /
    ``range`` (numbers, both ends included). Text compares trimmed and case-insensitively."""

    field: str
    equals: str | bool | int | None = None
    in_: Annotated[list[str | int] | None, Field(alias="in", min_length=1)] = None
    matches: str | None = None
    range: tuple[int, int] | None = None
    #: false: a protected user's values are not updated either (it is frozen as it is)
    updates: bool = True
    #: what the report says; default: the condition itself
    reason: str | None = None

    model_config = {**StrictModel.model_config, "populate_by_name": True}

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        if v not in FIELDS:
            raise ValueError(f"unknown field {v!r}; a condition reads a users-table field: {', '.join(FIELDS)}")
        return v

    @field_validator("matches")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"matches: not a regular expression ({exc})") from exc
        return v

    @model_validator(mode="after")
    def _one_test(self) -> ProtectRule:
        given = [name for name in ("equals", "in_", "matches", "range") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"field {self.field!r}: give exactly one of equals, in, matches, range "
                             f"(got {', '.join(g.rstrip('_') for g in given) or 'none'})")
        kind = FIELDS[self.field].kind
        if kind is Kind.BOOL and (given[0] != "equals" or not isinstance(self.equals, bool)):
            raise ValueError(f"field {self.field!r} is a flag: use equals: true or equals: false")
        if given[0] == "range":
            low, high = self.range or (0, 0)
            if kind is not Kind.NUMBER:
                raise ValueError(f"range: field {self.field!r} is not a number field "
                                 f"({', '.join(n for n, f in FIELDS.items() if f.kind is Kind.NUMBER)})")
            if low > high:
                raise ValueError(f"range: {low} is above {high}")
        return self

    @property
    def label(self) -> str:
        if self.reason:
            return self.reason
        if self.in_ is not None:
            return f"{self.field} in [{', '.join(map(str, self.in_))}]"
        if self.matches is not None:
            return f"{self.field} matches {self.matches!r}"
        if self.range is not None:
            return f"{self.field} in range {self.range[0]}–{self.range[1]}"
        return f"{self.field} = {self.equals!r}"

    def holds_for(self, value: Any) -> bool:
        """Whether a user whose ``field`` holds ``value`` is protected by this entry."""
        if isinstance(self.equals, bool):
            return bool(value) is self.equals
        text = _fold(value)
        if text is None:
            return False
        if self.equals is not None:
            return text == _fold(self.equals)
        if self.in_ is not None:
            return text in {_fold(v) for v in self.in_}
        if self.matches is not None:
            return re.fullmatch(self.matches, str(value).strip(), re.IGNORECASE) is not None
        low, high = self.range or (0, -1)
        return text.isdigit() and low <= int(text) <= high


def _fold(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().casefold()
    return text or None


def protection(rules: list[ProtectRule], row: dict[str, Any]) -> tuple[str, bool] | None:
    """Why ``row`` (a users-table row) is protected and whether it still takes updates; None if it is not."""
    matched = [r for r in rules if r.holds_for(row.get(r.field))]
    if row.get(COLUMN):
        matched_label = f"{COLUMN} is set" + (f"; {', '.join(r.label for r in matched)}" if matched else "")
        return matched_label, all(r.updates for r in matched)
    if not matched:
        return None
    return "; ".join(r.label for r in matched), all(r.updates for r in matched)
