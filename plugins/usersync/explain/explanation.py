"""An account's explanation as the steps of a run leave it: numbered sections of lines, in the run folder.

Each step adds lines to the sections it can speak for (extract: what was read and the scope; map: the fields;
diff: the match, the claims, the planned outcome). Steps may run on different workers, so each writes its own
file; ``load`` merges them in step order.
"""

from __future__ import annotations

from typing import Any

from usersync.core.run_folder import RunFolder

#: section key → heading, in the order the report shows them
SECTIONS = {
    "read": "1. what was read",
    "scope": "2. scope",
    "fields": "3. fields",
    "match": "4. match",
    "claims": "5. claims",
    "outcome": "6. outcome",
}
STEPS = ("extract", "map", "diff")


def save(folder: RunFolder, step: str, sections: dict[str, list[str]], facts: dict[str, Any] | None = None) -> None:
    """One step's part: lines per section, and facts the later steps and the report need (JSON-able)."""
    folder.write_json(f"explain/{step}.json", {"sections": sections, "facts": facts or {}})


def load(folder: RunFolder) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Every step's part merged: (lines per section, facts); empty when no step wrote one."""
    sections: dict[str, list[str]] = {}
    facts: dict[str, Any] = {}
    for step in STEPS:
        part = folder.read_json(f"explain/{step}.json")
        if not part:
            continue
        for key, lines in part.get("sections", {}).items():
            sections.setdefault(key, []).extend(lines)
        facts.update(part.get("facts", {}))
    return sections, facts


def render(account: str, sections: dict[str, list[str]]) -> list[str]:
    """The explanation as report lines, under its numbered headings (sections no step reached say so)."""
    out = [f"explanation of account {account!r}:"]
    for key, title in SECTIONS.items():
        out.append(f"{title}:")
        out += [f"   {line}" for line in sections.get(key) or ["(not reached: the run stopped before this step)"]]
    return out
