"""What a draft rules file changes against the live one, setting by setting, in the report's words."""

from __future__ import annotations

from typing import Any

from usersync.rules.model import Rules

#: the sections an admin cares about in a preview, in this order (scope is the source section)
SECTIONS = (("source", "scope"), ("fields", "fields"), ("safety", "safety"), ("schedule", "schedule"),
            ("run", "run"), ("report", "report"), ("alarms", "alarms"))


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def rules_changes(live: Rules, draft: Rules) -> list[str]:
    """One line per setting the draft adds, removes or changes (``fields.email.transforms: [...] → [...]``)."""
    before, after = live.model_dump(mode="json"), draft.model_dump(mode="json")
    lines = []
    for section, label in SECTIONS:
        old, new = _flat(before.get(section), section), _flat(after.get(section), section)
        for path in sorted(old.keys() | new.keys()):
            if old.get(path) != new.get(path):
                lines.append(f"{label}: {path}: {_shown(old.get(path), path in old)} → {_shown(new.get(path), path in new)}")
    return lines or ["the draft holds the same rules as the live file"]


def _shown(value: Any, present: bool) -> str:
    return repr(value) if present else "(not set)"
