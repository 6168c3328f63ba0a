"""Section 6's last line: what the run did to the account's user, once apply ran (or did not)."""

from __future__ import annotations

from typing import Any


def planned_kind(counts: dict[str, int]) -> str:
    """The one thing a single-account change set does: insert, update, skip, hold — or nothing."""
    for kind, count in (("insert", "inserted"), ("update", "updated"), ("skip", "skipped")):
        if counts.get(count):
            return kind
    return "nothing"


def result_line(facts: dict[str, Any], dry_run: bool, applied: dict[str, Any], failure: dict[str, Any] | None) -> str:
    """``result: …`` — inserted / updated / not applied (changed meanwhile) / dry run: would … / nothing."""
    kind = planned_kind(facts.get("planned") or {})
    if failure:
        return f"result: NOTHING WRITTEN — the run failed at step {failure.get('step')}: {failure.get('error')}"
    if kind in ("insert", "update"):
        if dry_run:
            return f"result: dry run: would {kind} the user as planned above; nothing written"
        if applied.get("conflict_count"):
            return ("result: NOT APPLIED — the users table changed during the run: "
                    f"{'; '.join(applied.get('conflicts') or [])}; the next run reconciles")
        done = (applied.get("written") or {}).get("inserted" if kind == "insert" else "updated", 0)
        if not done:
            return "result: not applied (apply did not run)"
        return f"result: {'inserted' if kind == 'insert' else 'updated'}"
    if kind == "skip":
        return "result: skipped — nothing written for this account"
    return "result: nothing written"
