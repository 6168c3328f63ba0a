"""One entry as a source returns it: the unit every reader yields and mapping consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceRecord:
    """One entry as read from a source: where it is (``account``) and its attributes."""

    account: str
    attributes: Mapping[str, Any]
    #: set by a source that could not read the record properly (e.g. a CSV row with too many fields)
    problem: str | None = None

    def get(self, name: str) -> str | None:
        """First value of an attribute, case-insensitively, stripped; None when absent or blank."""
        value = self.attributes.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in self.attributes.items() if k.lower() == lowered), None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is None:
            return None
        text = str(value).strip()
        return text or None
