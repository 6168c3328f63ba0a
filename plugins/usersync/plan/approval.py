"""Approving a run the mass-delete guard stopped: what the request tells the admin, and what the answer means.

A live run over the guard's limits does not fail at once (unless ``safety.approve_blocked_runs`` is false): it
waits for an admin's *Approve* or *Reject*. The request has to carry everything needed to decide without a shell
— how many users would go, against which limits, the first of them by name, and where the full list is. The
answer is recorded in the report: who approved and when, or that nobody answered in time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from usersync.plan.change_guard import ChangeVerdict
from usersync.plan.changes import ChangeSet
from usersync.plan.safety import Verdict
from usersync.rules.model import ApprovalsSpec

#: the answers an admin has, in the order the UI shows them
APPROVE, REJECT, KEEP_LOCAL = "Approve", "Reject", "Keep them as local users"
OPTIONS = (APPROVE, REJECT, KEEP_LOCAL)
#: how many of the planned removals the request lists by name (the report and the change set have them all)
REQUEST_LINES = 20


#: how Airflow names a run no person triggered through the UI or the API: ``airflow dags test`` / ``dag.test()`` on
#: the Airflow host (None: a scheduled run)
HOST_RUN = "dag_test"


def may_override(approvals: ApprovalsSpec, triggered_by: str | None) -> bool:
    """Whether a run's trigger-time overrides (``allow_mass_delete``, ``allow_mass_write_back``, ``keep_as_local``)
    are honoured: the person who triggered it is an approver, or no person did."""
    return triggered_by in (None, HOST_RUN) or triggered_by in approvals.approvers


def override_refused(name: str, triggered_by: str | None) -> str:
    """The report's words for an override that was not honoured."""
    return (f"{name} was not honoured: {triggered_by!r} who triggered the run is not among approvals.approvers; "
            "the run asks for approval as if it were not set")


def respondents(approvals: ApprovalsSpec, triggered_by: str | None) -> list[str]:
    """Who may answer this run's approval: the approvers, less the person who triggered it (four eyes) unless
    ``self_approval``; [] with no approvers named (then anyone allowed to answer it in Airflow may)."""
    if approvals.self_approval:
        return list(approvals.approvers)
    return [a for a in approvals.approvers if a != triggered_by]


def own_answer(approvals: ApprovalsSpec, triggered_by: str | None, answered_by: str | None) -> str | None:
    """Why an answer cannot count: given by the person who triggered the run (None: it counts)."""
    if approvals.self_approval or triggered_by in (None, HOST_RUN) or answered_by != triggered_by:
        return None
    return (f"refused: {answered_by!r} triggered this run and may not approve it too (four eyes; "
            "approvals.self_approval: false); nothing was written")


@dataclass(frozen=True)
class ApprovalRequest:
    subject: str
    body: str  # Markdown: Airflow's Required Actions page renders it

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def removal_lines(plan: ChangeSet, limit: int = REQUEST_LINES) -> list[str]:
    """The first ``limit`` planned removals, one per line: ``delete jdoe (CORP\\jdoe)``."""
    lines = [f"{kind} {c.username} ({c.domain}\\{c.ad_username})"
             for kind, changes in (("delete", plan.deletes), ("disable", plan.disables)) for c in changes]
    return lines[:limit]


def _code(line: str) -> str:
    """A name or value as a Markdown code span: never read as Markdown."""
    return f"`{line.replace('`', chr(39))}`"


def change_lines(changes: ChangeVerdict) -> list[str]:
    """The change guard's part of a request: each limit the run is over, then where and what (Markdown)."""
    if not changes.blocked:
        return []
    return ["**The change guard stopped this run:**", "", *(f"- {_code(line)}" for line in changes.over), "",
            "Where the accounts went missing and sample changes:", "",
            *(f"- {_code(line)}" for line in changes.detail()), ""]


def approval_request(source: str, verdict: Verdict, plan: ChangeSet, where: str, timeout_hours: float,
                     changes: ChangeVerdict | None = None) -> ApprovalRequest:
    """The request an admin answers in Airflow's UI (and that the waiting-for-approval mail repeats): the
    mass-delete guard's count and the change guard's breakdown, whichever stopped the run."""
    listed = removal_lines(plan)
    more = verdict.removals - len(listed)
    changed = change_lines(changes) if changes else []
    body = "\n".join([
        *changed,
        f"**{verdict.removals} of the {verdict.owned} users** the source `{source}` owns would be removed "
        f"(**{verdict.percent:.1f}%**); the mass-delete guard allows {verdict.max_deletes} users and "
        f"{verdict.max_delete_percent:g}%.",
        "",
        f"The run also has {plan.writes - plan.removals} insert(s) and update(s); nothing at all is written until "
        "you decide.",
        "",
        "* **Approve**: apply the whole change set once, with the guards lifted for this run only; the report records "
        "who approved and when.",
        "* **Keep them as local users**: the users listed below are not removed but become local users (AD "
        "username, Domain and owner cleared, every other value kept; no source touches them again); the rest of "
        "the change set applies.",
        f"* **Reject**, or no answer within {timeout_hours:g} h: nothing is written and the run ends as blocked.",
        "",
        f"First {len(listed)} planned removal(s):",
        "",
        *(f"- {_code(line)}" for line in listed),
        *([f"- … and {more} more"] if more > 0 else []),
        "",
        f"Full change set: {where}",
    ])
    subject = f"usersync: approve removing {verdict.removals} users from {source}?" if verdict.blocked or not changed \
        else f"usersync: approve the run of {source}? {changes.over[0] if changes else ''}"
    return ApprovalRequest(subject, body)


@dataclass(frozen=True)
class Decision:
    """The answer to an approval request. ``by`` is None when nobody answered (timed out)."""

    approved: bool
    by: str | None
    at: str | None  # ISO 8601, UTC
    timeout_hours: float | None = None
    #: the answer was "Keep them as local users": the planned removals become detaches, the rest applies
    keep_local: bool = False
    #: the guard the approval lifts: ``mass-delete`` (a blocked run) or ``write-back`` (a blocked wave)
    guard: str = "mass-delete"
    #: why the answer did not count (the person who triggered the run answered: four eyes)
    refused: str | None = None

    @property
    def timed_out(self) -> bool:
        return self.by is None and not self.approved

    def line(self) -> str:
        if self.refused:
            return f"answered by {self.by} at {self.at}, {self.refused}"
        if self.keep_local:
            return (f"answered '{KEEP_LOCAL}' by {self.by} at {self.at}: the users this run would have removed are "
                    "local users now (listed under 'detached'); the rest of the change set was applied")
        if self.approved:
            return f"approved by {self.by} at {self.at}: the {self.guard} guard was lifted for this run only"
        if self.timed_out:
            return (f"no answer within {self.timeout_hours:g} h: nothing was written (a run that is not "
                    "approved in time counts as rejected)")
        return f"rejected by {self.by} at {self.at}: nothing was written" + \
            (" to the directory" if self.guard == "write-back" else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def reason(self) -> str:
        """What a detach this answer caused says in the report."""
        return f"kept as a local user: '{KEEP_LOCAL}', answered by {self.by} at {self.at}"

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Decision | None:
        return cls(**data) if data else None
