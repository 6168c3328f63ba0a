"""Approving a write-back wave the guard stopped: the request names the size of the wave against its limit and
the first values by user, attribute, old and new — enough to decide without a shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

from usersync.plan.approval import APPROVE, REJECT, REQUEST_LINES, ApprovalRequest
from usersync.plan.write_back_guard import WaveVerdict

if TYPE_CHECKING:  # the DAG file imports this module for OPTIONS: no pyarrow at parse time
    from usersync.sources.planned_write import Write

#: a wave is written whole or not at all: there is no third answer
OPTIONS = (APPROVE, REJECT)


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
