"""The write-back tasks of a DAG whose rules have a ``write_back`` section, after ``apply``:

``plan_write_back`` (what to write, then the write-back guard: returns the task to follow) →
(``approve_write_back``, only when the wave is over ``write_back.max_writes``) → ``write_back``.

The directory's values are those this run read: its record files after a full read; after a delta read (which
holds the changed entries only) the written attributes of every account, read again in one lean paged search.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context

from usersync.core.run_folder import RunDataError, TableRef
from usersync.plan.approval import REQUEST_LINES
from usersync.plan.tables import records_of
from usersync.plan.write_back_guard import WRITE_BACK, check_wave, write_back_request
from usersync.rules import Rules
from usersync.run import write_back as wb
from usersync.sources.record import SourceRecord
from usersync.sources.registry import writer_class
from usersync.store.user_log import RunStamp, log_written_back, rules_file_hash
from usersync_airflow.dag import xcom
from usersync_airflow.dag.tasks import (
    dry_run,
    enforce,
    folder,
    guarded,
    override,
    params,
    rules_at,
    source_info,
    step,
    triggered_by,
)
from usersync_airflow.hooks import UsersDbHook
from usersync_airflow.hooks.connections import open_source, open_writer

log = logging.getLogger(__name__)
APPROVAL_TASK = "approve_write_back"


def _run_records(extracted: list[dict[str, Any]]) -> Iterator[SourceRecord]:
    run = folder()
    for part in extracted:
        for batch in run.batches(TableRef.from_json(part["records"])):
            yield from records_of(batch)


@step("plan_write_back")
def plan_write_back(rules_path: str, extracted: Any) -> str:
    """The write-back plan (to the run folder; its reference to XCom), then the write-back guard: returns
    ``approve_write_back`` when a live wave is too large and approvals are on, else ``write_back``."""
    rules = rules_at(rules_path)  # a previewed draft may have no write_back section: it plans nothing
    parts = [extracted[i] for i in range(len(extracted))]  # by index: iterating probes one past the end
    target_of = writer_class(rules.source).target_of
    hook = UsersDbHook(rules.target.conn_id)
    try:
        engine = hook.get_conn()
        if rules.write_back is not None and any(p.get("delta") for p in parts):
            plan = _plan_after_delta(rules, engine, target_of)
        else:
            plan = wb.plan_step(rules, engine, folder(), _run_records(parts), target_of)
    finally:
        hook.close()
    ti = get_current_context()["ti"]
    xcom.record_write_back_plan(ti, plan)
    verdict = check_wave(plan["writes"], _max_writes(rules), allow=override(rules, WRITE_BACK.override),
                         overridden_by=triggered_by())
    return guarded(rules, verdict, proceed="write_back", ask=APPROVAL_TASK, request=lambda: write_back_request(
        rules.source.name, verdict, wb.planned(folder(), plan)[:REQUEST_LINES],
        where=f"`{folder()}/{wb.PLAN_FILE}` (Parquet, on the run's storage)",
        timeout_hours=rules.safety.approval_timeout_hours))


def _max_writes(rules: Rules) -> int:
    return rules.write_back.max_writes if rules.write_back else 0


def _plan_after_delta(rules: Rules, engine, target_of) -> dict[str, Any]:
    """A delta read holds the changed entries only: read the written attributes of every account in scope."""
    assert rules.write_back is not None
    lean = list(dict.fromkeys([*rules.source.own_attributes(), *rules.write_back.attributes]))
    info = source_info().copy()
    info.pop("read", None)  # without the delta decision: a full read
    log.info("write-back after a delta read: reading %s of every account in scope", ", ".join(lean))
    with open_source(rules, params(), attributes=lean) as source:
        return wb.plan_step(rules, engine, folder(), source.records(info), target_of)


@step("write_back")
def write_back(rules_path: str) -> dict[str, Any]:
    """Write the planned values (each only while the directory still holds what the run read); in a dry run only
    list them. A wave over the guard without approval fails here as blocked, having written nothing."""
    rules = rules_at(rules_path)
    ti = get_current_context()["ti"]
    plan = xcom.write_back_plan(ti)
    if plan is None:
        raise RunDataError("no write-back plan from the plan_write_back task of this run")
    decision = xcom.decision(ti, APPROVAL_TASK)
    allowed = override(rules, WRITE_BACK.override)
    approved = decision.by if decision and decision.approved else None
    enforce(check_wave(plan["writes"], _max_writes(rules), allow=allowed, approved_by=approved,
                       overridden_by=triggered_by()), WRITE_BACK)

    def guard(loaded: int) -> None:  # again on the values loaded, never on the count handed over in XCom
        again = check_wave(loaded, _max_writes(rules), allow=allowed, approved_by=approved)
        if again.blocked:
            enforce(again, WRITE_BACK)

    def logged(written: list) -> None:  # each user's values written back, in the per-user log
        hook = UsersDbHook(rules.target.conn_id)
        try:
            stamp = RunStamp(run_id=get_current_context()["run_id"], rules_hash=rules_file_hash(
                Path(rules_path).read_bytes()), approved_by=decision.line()[:256] if approved and decision else None)
            log_written_back(hook.get_conn(), rules.source.name, stamp, written)
        finally:
            hook.close()

    writer = open_writer(rules)
    return wb.write_step(writer, folder(), plan, dry_run(), rules.report.max_change_lines, guard=guard,
                         logged=logged)
