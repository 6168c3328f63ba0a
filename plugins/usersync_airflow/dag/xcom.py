"""The one place that knows how a sync DAG's tasks reach each other's results in XCom: task ids, keys, and the
typed documents (``usersync.run.handover``, the approval's ``Decision``, the guard's verdict) behind them.

Task return values are the hand-over documents; side channels (a step's failure, the guard's verdict, the
approval request and answer) are pushed under the keys below. Everything stays small: references and counts.
"""

from __future__ import annotations

from typing import Any, cast

from usersync.plan.approval import Decision
from usersync.run.handover import Applied, ExtractJob, PlanRef, SourceInfo, StepFailure

#: the steps whose failure the report names, in run order
STEPS = ("check_source", "extract", "map", "diff", "approve", "apply", "plan_write_back", "approve_write_back",
         "write_back")
ERROR_KEY = "usersync_error"
VERDICT_KEY = "usersync_verdict"
REQUEST_KEY = "usersync_approval_request"
DECISION_KEY = "usersync_approval"
PLAN_KEY = "usersync_plan"
WRITE_BACK_PLAN_KEY = "usersync_write_back_plan"
REFUSED_KEY = "usersync_overrides_refused"
SKIP_KEY = "usersync_quarantined"


def _first(value: Any) -> Any:
    """A mapped task (extract, map: one per partition) answers with a list: its first non-empty item."""
    if isinstance(value, (list, tuple)) or (value is not None and not isinstance(value, dict)):
        return next((v for v in value if v), None)
    return value


# --- written ------------------------------------------------------------------------------------------------

def record_refused_override(ti: Any, line: str) -> None:
    """An override the run was given but does not honour (four eyes), for the report."""
    ti.xcom_push(key=REFUSED_KEY, value=line)


def refused_overrides(ti: Any) -> list[str]:
    """Every override a step of this run refused, once each, in run order."""
    found = (ti.xcom_pull(task_ids=task, key=REFUSED_KEY) for task in ("check_source", *STEPS))
    return list(dict.fromkeys(line for value in found for line in ([value] if isinstance(value, str) else value or [])
                              if line))


def record_failure(ti: Any, failure: StepFailure) -> None:
    ti.xcom_push(key=ERROR_KEY, value=dict(failure))


def record_skip(ti: Any, why: str) -> None:
    """A quarantined source's scheduled run that does not try the source (check_source), for the report."""
    ti.xcom_push(key=SKIP_KEY, value=why)


def skipped(ti: Any) -> str | None:
    return cast("str | None", ti.xcom_pull(task_ids="check_source", key=SKIP_KEY))


def record_plan(ti: Any, plan: PlanRef) -> None:
    ti.xcom_push(key=PLAN_KEY, value=dict(plan))


def record_verdict(ti: Any, verdict: dict[str, Any]) -> None:
    ti.xcom_push(key=VERDICT_KEY, value=verdict)


def record_request(ti: Any, request: dict[str, str]) -> None:
    ti.xcom_push(key=REQUEST_KEY, value=request)


def record_write_back_plan(ti: Any, plan: dict[str, Any]) -> None:
    ti.xcom_push(key=WRITE_BACK_PLAN_KEY, value=plan)


def record_decision(ti: Any, decision: Decision) -> None:
    ti.xcom_push(key=DECISION_KEY, value=decision.to_json())


# --- read ---------------------------------------------------------------------------------------------------

def source_info(ti: Any) -> SourceInfo:
    """What ``check_source`` found (the same in each of its extract jobs); {} when it failed."""
    jobs = cast(list[ExtractJob], ti.xcom_pull(task_ids="check_source") or [])
    return jobs[0]["source_info"] if jobs else {}


def plan_ref(ti: Any) -> PlanRef | None:
    """The change set's reference: the one ``apply`` applied when it changed the plan (an admin's "Keep them as
    local users"), else the ``diff``'s."""
    applied_plan = ti.xcom_pull(task_ids="apply", key=PLAN_KEY) if ti.task_id in ("report",) else None
    return cast("PlanRef | None", applied_plan or ti.xcom_pull(task_ids="diff", key=PLAN_KEY))


def applied(ti: Any) -> Applied:
    return cast(Applied, ti.xcom_pull(task_ids="apply") or {})


def failure(ti: Any) -> StepFailure | None:
    """The first step that failed, in run order (a mapped step: its first failing partition)."""
    found = (_first(ti.xcom_pull(task_ids=step, key=ERROR_KEY)) for step in STEPS)
    return cast("StepFailure | None", next((f for f in found if f), None))


def verdict(ti: Any) -> dict[str, Any] | None:
    """The mass-delete guard's last word: apply's re-check, else the one diff ended with."""
    return cast("dict[str, Any] | None", ti.xcom_pull(task_ids="apply", key=VERDICT_KEY)
                or ti.xcom_pull(task_ids="diff", key=VERDICT_KEY))


def request(ti: Any, asked_by: str = "diff") -> dict[str, str]:
    """The approval request a guard prepared for a blocked run: the mass-delete guard's (at the end of ``diff``)
    or the write-back guard's (``plan_write_back``)."""
    return cast("dict[str, str]", ti.xcom_pull(task_ids=asked_by, key=REQUEST_KEY))


def decision(ti: Any, approval: str = "approve") -> Decision | None:
    """The admin's answer to an approval request (None: no approval was asked, or no answer yet): the blocked
    run's (``approve``) or the blocked write-back wave's (``approve_write_back``)."""
    return Decision.from_json(ti.xcom_pull(task_ids=approval, key=DECISION_KEY))


def write_back_plan(ti: Any) -> dict[str, Any] | None:
    """The write-back plan's reference and size (``plan_write_back``)."""
    return cast("dict[str, Any] | None", ti.xcom_pull(task_ids="plan_write_back", key=WRITE_BACK_PLAN_KEY))


def write_back(ti: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What write-back did (counts and first lines; None: it did not run) and the write-back guard's last word."""
    done = ti.xcom_pull(task_ids="write_back")
    verdict = ti.xcom_pull(task_ids="write_back", key=VERDICT_KEY) or \
        ti.xcom_pull(task_ids="plan_write_back", key=VERDICT_KEY)
    return cast("dict[str, Any] | None", done or None), cast("dict[str, Any] | None", verdict)
