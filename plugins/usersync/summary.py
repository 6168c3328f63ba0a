"""A short, human summary of a run for the task log: counts, then the changes and skipped accounts."""

from __future__ import annotations

from usersync.changes import ChangeSet


def _fmt(value) -> str:
    return "''" if value is None or value == "" else repr(value)


def change_lines(plan: ChangeSet, limit: int = 50) -> list[str]:
    """One line per change (insert, update with old → new, delete), capped at ``limit``."""
    lines: list[str] = []
    for ins in plan.inserts:
        lines.append(f"+ insert {ins.row.get('username')} ({ins.label})")
    for upd in plan.updates:
        diffs = ", ".join(f"{c}: {_fmt(o)} → {_fmt(n)}" for c, (o, n) in sorted(upd.changes.items()))
        lines.append(f"~ update {upd.username}: {diffs}")
    for dele in plan.deletes:
        lines.append(f"- delete {dele.username} ({dele.domain}\\{dele.ad_username})")
    if len(lines) > limit:
        left = len(lines) - limit
        lines = lines[:limit] + [f"… and {left} more change(s) not listed"]
    return lines


def format_summary(plan: ChangeSet, applied: bool, limit: int = 50) -> str:
    c = plan.counts()
    head = (
        f"usersync {plan.source}: read {c['read']}, inserted {c['inserted']}, updated {c['updated']}, "
        f"deleted {c['deleted']}, unchanged {c['unchanged']}, skipped {c['skipped']}"
        + ("" if applied else " (not applied)")
    )
    lines = [head, *change_lines(plan, limit)]
    if plan.skipped:
        lines.append("skipped accounts (fix them in the source and run again):")
        lines.extend(f"! {s.account}: {s.reason}" for s in plan.skipped[:limit])
        if len(plan.skipped) > limit:
            lines.append(f"… and {len(plan.skipped) - limit} more skipped account(s) not listed")
    return "\n".join(lines)
