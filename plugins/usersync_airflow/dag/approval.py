"""The ``approve`` task: a blocked live run waits here for an admin's Approve / Reject / Keep them as local users
in Airflow's UI
(*Required Actions*, or ``PATCH /api/v2/dags/<dag>/dagRuns/<run>/taskInstances/approve/-1/hitlDetails``)
instead of failing.

Built on the standard provider's ``HITLOperator`` with three fixed options; what it adds is usersync's own request
(counts, limits, the first removals, where the change set is — prepared by the ``diff`` task, which ends with the
guard), the waiting-for-approval mail, and the answer's meaning: Approve → ``apply`` runs with the guard lifted for
this run only; Keep them as local users → ``apply`` detaches the users it would have removed and applies the rest;
Reject or no answer within ``safety.approval_timeout_hours`` → the task fails as *blocked* (nothing written, alarm
as before).
This module is imported when the DAG file is parsed: it must stay light (no pandas, no domain steps).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowFailException

from usersync.plan.approval import APPROVE, KEEP_LOCAL, OPTIONS, Decision, own_answer, respondents
from usersync.rules import load_rules
from usersync.run.handover import StepFailure
from usersync_airflow.dag import xcom
from usersync_airflow.ui.links import ui_base_url

TASK_ID = "approve"
log = logging.getLogger(__name__)


class BlockedRunApproval(HITLOperator):
    """Ask an admin to approve a run the mass-delete guard blocked (only reached when ``diff``'s guard says so) —
    or, as ``approve_write_back``, a write-back wave its guard blocked (``plan_write_back``)."""

    APPROVE = APPROVE

    def __init__(self, *, rules_path: str, timeout_hours: float, task_id: str = TASK_ID,
                 options: tuple[str, ...] = OPTIONS, asked_by: str = "diff", guard: str = "mass-delete",
                 **kwargs) -> None:
        super().__init__(
            task_id=task_id,
            options=list(options),
            multiple=False,
            subject=f"usersync: approve what the {guard} guard blocked",
            body=f"(the {asked_by} task fills in what waits)",
            response_timeout=timedelta(hours=timeout_hours),
            retries=0,
            **kwargs,
        )
        self.rules_path = rules_path
        self.timeout_hours = timeout_hours
        self.asked_by, self.guard = asked_by, guard

    def execute(self, context):
        request = xcom.request(context["ti"], self.asked_by)
        self.subject, self.body = request["subject"], request["body"]
        approvals = load_rules(self.rules_path).approvals
        who = respondents(approvals, triggered_by(context))
        if approvals.approvers and not who:
            decision = Decision(approved=False, by=None, at=None, guard=self.guard,
                                refused=f"refused: nobody but {triggered_by(context)!r}, who triggered the run, is "
                                        "among approvals.approvers (four eyes); nothing was written")
            return _record(decision, context, self.task_id)
        if who:  # Airflow lets only these answer (403 for anyone else, the triggering user included)
            self.assigned_users = [{"id": user, "name": user} for user in who]
            self.body += f"\n\nMay answer: {', '.join(who)} (approvals.approvers; not the person who triggered the run)."
        link = self.generate_link_to_ui(task_instance=context["task_instance"], base_url=ui_base_url())
        self._announce(request, link, context)
        return super().execute(context)

    def _announce(self, request: dict[str, str], link: str, context) -> None:
        from usersync_airflow.dag.alarms import send_approval_mail  # only when a run waits: smtp stays out of parsing

        rules = load_rules(self.rules_path)
        self.log.info("approval requested: %s — answer it at %s", request["subject"], link)
        send_approval_mail(request, link, rules.alarms, context)
        if rules.notify:
            from usersync.run.notice import approval_notice
            from usersync_airflow.dag.notify import send_notices

            send_notices(rules.notify, approval_notice(request, link), context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if event.get("error_type") == "timeout":  # no answer and no default: the scheduler's timeout sweep
            decision = Decision(approved=False, by=None, at=None, timeout_hours=self.timeout_hours, guard=self.guard)
        else:
            answer = HITLOperator.execute_complete(self, context=context, event=event)  # validates the options
            user = answer["responded_by_user"] or {}
            refused = own_answer(load_rules(self.rules_path).approvals, triggered_by(context), user.get("id"))
            decision = Decision(
                approved=answer["chosen_options"] in ([APPROVE], [KEEP_LOCAL]) and refused is None,
                keep_local=answer["chosen_options"] == [KEEP_LOCAL] and refused is None,
                by=user.get("name") or user.get("id"),
                at=answer["responded_at"].isoformat(timespec="seconds") if answer["responded_at"] else None,
                timeout_hours=self.timeout_hours,
                guard=self.guard,
                refused=refused,
            )
        return _record(decision, context, self.task_id)


def triggered_by(context) -> str | None:
    """The Airflow user who triggered this run (None: the scheduler; ``dag_test``: the Airflow host itself)."""
    return getattr(context["dag_run"], "triggering_user_name", None)


def _record(decision: Decision, context, task_id: str) -> dict[str, Any]:
    """Hand the answer on (XCom): ``apply`` lifts the guard on Approve; otherwise the run ends as blocked."""
    ti = context["ti"]
    xcom.record_decision(ti, decision)
    if decision.approved:
        log.info("%s", decision.line())
        return decision.to_json()
    xcom.record_failure(ti, StepFailure(step=task_id, type="NotApproved", error=decision.line(), traceback="",
                                        blocked=True))
    raise AirflowFailException(f"blocked: {decision.line()}")
