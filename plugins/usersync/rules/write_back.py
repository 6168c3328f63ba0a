"""The ``write_back`` section of a rules file: which users-table field goes to which directory attribute.

```yaml
write_back:
  max_writes: 500
  attributes:
    ipPhone: extension                      # the field's value as it is
    telephoneNumber:
      field: extension
      format: "+39 02 1234 {extension}"     # the field's value inside a fixed text
    facsimileTelephoneNumber: {field: fax_number, clear_when_empty: true}
```

Keyed by attribute, so no attribute is written from two fields. Whether a field may be written back (only values
the application owns) and an attribute may be written (never one the rules read) is checked with the whole rules
file, in ``usersync.rules.model``.
"""

from __future__ import annotations

import string
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from usersync.core.models import StrictModel


class WriteBackRule(StrictModel):
    """One directory attribute: the users-table ``field`` it holds, optionally inside ``format``."""

    field: str
    #: the attribute's value: this text with ``{<field>}`` replaced by the field's value (default: the value alone)
    format: str | None = None
    #: an empty field clears the attribute; false (the default): an empty field leaves the directory as it is
    clear_when_empty: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _format_names_the_field(self) -> WriteBackRule:
        if self.format is None:
            return self
        try:
            names = [name for _, name, spec, conv in string.Formatter().parse(self.format) if name is not None]
        except ValueError as exc:
            raise ValueError(f"format {self.format!r}: {exc}") from None
        if names != [self.field]:
            raise ValueError(f"format {self.format!r} must hold {{{self.field}}} exactly once and no other "
                             f"placeholder (found: {', '.join('{' + n + '}' for n in names) or 'none'}); "
                             "write a literal brace as {{ or }}")
        return self

    def value(self, field_value: str | None) -> str | None:
        """The attribute's value for this field value; None for an empty field."""
        text = (field_value or "").strip()
        if not text:
            return None
        return self.format.format_map({self.field: text}) if self.format else text


class WriteBackSpec(StrictModel):
    """Per source: directory attribute → the users-table field written to it, and the size of a wave."""

    attributes: dict[str, WriteBackRule]
    #: a run that would write more values than this waits for an admin's approval (like a mass delete) — or
    #: fails, when approvals are off; the trigger parameter allow_mass_write_back lets one run through
    max_writes: Annotated[int, Field(ge=0)] = 500

    @field_validator("attributes")
    @classmethod
    def _some(cls, v: dict[str, WriteBackRule]) -> dict[str, WriteBackRule]:
        if not v:
            raise ValueError("name at least one directory attribute to write back, or remove write_back")
        lowered = [name.lower() for name in v]
        twice = sorted({name for name in v if lowered.count(name.lower()) > 1})
        if twice:
            raise ValueError(f"attribute written twice (names are case-insensitive): {', '.join(twice)}")
        return v
