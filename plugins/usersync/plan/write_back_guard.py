"""The write-back guard, and the approval it asks for: a wave larger than ``write_back.max_writes`` is not
written until an admin approves it (or the run is triggered with ``allow_mass_write_back``) — a mistaken rule or
a bulk renumbering in the application must not rewrite a whole directory unseen."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from usersync.core.errors import Blocked
from usersync.plan.approval import APPROVE, REJECT, REQUEST_LINES, ApprovalRequest
from usersync.plan.guard import Guard
from usersync.plan.safety import person

if TYPE_CHECKING:  # the DAG file imports this module for OPTIONS: no pyarrow at parse time
    from usersync.sources.planned_write import Write

#: a wave is written whole or not at all: there is no third answer
OPTIONS = (APPROVE, REJECT)


class UnsafeWriteBack(Blocked, RuntimeError):
    """The write-back wave exceeds ``write_back.max_writes``; nothing was written to the directory."""


WRITE_BACK = Guard("write-back guard", "allow_mass_write_back", UnsafeWriteBack)


@dataclass(frozen=True)
class WaveVerdict:
    writes: int
    max_writes: int
    blocked: bool
    allowed_by_override: bool
    approved_by: str | None = None
    overridden_by: str | None = None  # who triggered the run that set allow_mass_write_back

    @property
    def message(self) -> str:
        head = f"{self.writes} value(s) to write back (limit: {self.max_writes})"
        if self.blocked:
            return (f"BLOCKED by the write-back guard: {head}. Nothing was written to the directory. If the wave is "
                    "intended, approve it in Airflow's Required Actions (when approvals are on) or trigger the DAG "
                    "once with the parameter allow_mass_write_back = true; the next run is guarded again.")
        if self.allowed_by_override and self.approved_by:
            return f"write-back guard lifted for this run, approved by {self.approved_by}: {head}"
        if self.allowed_by_override:
            return (f"write-back guard overridden for this run (allow_mass_write_back, set by "
                    f"{person(self.overridden_by)}): {head}")
        return f"write-back guard passed: {head}"

    def to_json(self) -> dict:
        return {**asdict(self), "message": self.message}


def check_wave(writes: int, max_writes: int, allow: bool = False, approved_by: str | None = None,
               overridden_by: str | None = None) -> WaveVerdict:
    allow = allow or approved_by is not None
    over = writes > max_writes
    return WaveVerdict(writes, max_writes, blocked=over and not allow, allowed_by_override=over and allow,
                       approved_by=approved_by if over else None, overridden_by=overridden_by if over else None)


def write_back_request(source: str, verdict: WaveVerdict, writes: list[Write], where: str,
                       timeout_hours: float) -> ApprovalRequest:
    listed = [w.line() for w in writes[:REQUEST_LINES]]
    more = verdict.writes - len(listed)
    body = "\n".join([
        f"**{verdict.writes} values** would be written back to the directory of source `{source}`; the write-back "
        f"guard allows {verdict.max_writes} (`write_back.max_writes`). The users table is already up to date: only "
        "the write-back waits.",
        "",
        "* **Approve**: write the whole wave once, with the guard lifted for this run only; each value is still "
        "written only while the directory holds the value the run read.",
        f"* **Reject**, or no answer within {timeout_hours:g} h: nothing is written to the directory; the next run "
        "plans the wave again.",
        "",
        f"First {len(listed)} value(s):",
        "",
        *(f"- `{line.replace('`', chr(39))}`" for line in listed),
        *([f"- … and {more} more"] if more > 0 else []),
        "",
        f"Full list: {where}",
    ])
    return ApprovalRequest(f"usersync: approve writing {verdict.writes} values back to {source}?", body)
