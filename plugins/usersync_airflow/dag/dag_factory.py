"""Builds one Airflow DAG per rules file: ``user_sync__<source>``.

The DAG is a thin shell: every task calls into ``usersync_airflow.dag.tasks`` with the rules file path, so the
rules are read again at run time and a DAG stays a few lines of wiring.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task

from usersync.plan.write_back_guard import OPTIONS as WRITE_BACK_OPTIONS
from usersync.rules import Rules, RulesError, load_rules_dir
from usersync_airflow.dag.approval import BlockedRunApproval
from usersync_airflow.dag.assets import users_alias
from usersync_airflow.rules_location import rules_dir

DAG_PREFIX = "user_sync__"
IMPORT_PREFIX = "user_import__"


def dag_id(rules: Rules) -> str:
    """``user_sync__<source>``; CSV imports, which never delete, are ``user_import__<source>``."""
    return f"{IMPORT_PREFIX if rules.source.on_demand else DAG_PREFIX}{rules.source.name}"


def _doc(rules: Rules, path: Path) -> str:
    src, sched = rules.source, rules.schedule
    when = f"daily at {sched.hour:02d}:{sched.minute:02d} {sched.timezone}" if sched.auto else "manual runs only"
    conn_id = src.connection_id()
    where = f"connection `{conn_id}`" if conn_id else "the file named by the `file` parameter"
    removal = {"delete": "removes users that left", "disable": "disables users that left",
               "keep": "never removes users"}[rules.safety.deletion]
    approval = (f"waits up to {rules.safety.approval_timeout_hours:g} h in **Required Actions** for an admin's "
                "Approve (applied once, guard lifted for that run) or Reject (nothing written)"
                if rules.safety.approve_blocked_runs else "fails and writes nothing (approvals are off)")
    return (
        f"### User sync from `{src.name}` ({src.type})\n\n"
        f"**Dry run** reads and compares but writes nothing: the report lists what a live run would change. "
        f"**Approval**: a live run that would remove more users than the mass-delete guard allows {approval}.\n\n"
        f"Keeps the users table in line with the source behind {where}: inserts new accounts, updates changed "
        f"ones, {removal}. Only users owned by this source are touched; local users (blank AD username and "
        f"Domain) never are.\n\n"
        f"* Rules: `{path}`\n* Schedule: {when}\n* Reads: {src.describe()}\n"
        f"* Domain stored: `{src.domain or '(from ' + str(src.domain_attribute) + ')'}`\n\n"
        f"Steps: check_source → extract → map (×{src.partition_count} partitions, in parallel) → diff (which ends "
        "with the mass-delete and change guards) → (approve, only when blocked) → apply (which emits the users table's Asset "
        "event when it wrote) → report; "
        "the run's data (records, mapped users, the change set) is in Parquet files of the run folder, XCom "
        "holds only references. Trigger with **dry_run** to preview, "
        "with **allow_mass_delete** / **allow_mass_change** to let one run past the mass-delete / change guard"
        + (", with **full_sync** to read the whole directory instead of what changed" if src.delta else "")
        + ", with **account** to sync and explain one account only, with **preview_draft** to see what the draft "
          f"rules (`{path.stem}.draft.yaml`) would change"
        + (f". After apply, **write-back** writes {', '.join(f'`{r.field}` → `{a}`' for a, r in rules.write_back.attributes.items())} "
           f"back to the source (plan_write_back → write_back; more than {rules.write_back.max_writes} values wait "
           "for approval, or trigger with **allow_mass_write_back**)" if rules.write_back else "")
        + ". The `report` task log holds the "
        "run's report; alarms go to the recipients in the rules file."
    )


PARAMS = {
    "dry_run": Param(
        False, type="boolean", title="Dry run",
        description="Write nothing: read, compare and report every change a live run would make. A live run the "
                    "mass-delete guard blocks waits for an admin's approval in Required Actions.",
    ),
    "allow_mass_delete": Param(
        False, type="boolean", title="Allow mass delete",
        description="For scripted runs: let this one run through the mass-delete guard without an approval "
                    "(the next run is guarded again).",
    ),
    "allow_mass_change": Param(
        False, type="boolean", title="Allow mass change",
        description="For scripted runs: let this one run through the change guard (a read that shrank, a field "
                    "changed or cleared on many users) without an approval (the next run is guarded again).",
    ),
    "undo_run": Param(
        None, type=["null", "string"], title="Undo run",
        description="The id of a finished run of this source to undo instead of syncing: its writes are reversed "
                    "for every user nobody changed since (the others are listed), through the same guard, approval "
                    "and report. With Dry run: only list what the undo would do. Empty: a normal run.",
    ),
}


DELTA_PARAMS = {
    "full_sync": Param(
        False, type="boolean", title="Full sync",
        description="Read the whole directory this run instead of only what changed since the last run.",
    ),
}


def one_user_params(rules: Rules, path: Path) -> dict[str, Param]:
    """``account`` (one account on demand, explained) and ``preview_draft`` (the draft rules, as a dry run)."""
    return {
        # null allowed: the form sends an empty field as null, and an empty field means the whole source
        "account": Param(
            None, type=["null", "string"], title="One account",
            description=f"Sync only this account — {rules.source.account_forms} — read alone from the source; "
                        "deletes nobody, and the report explains each step for it. Empty: the whole source.",
        ),
        "keep_as_local": Param(
            False, type="boolean", title="Keep as a local user",
            description="With One account: turn that account's user into a local user instead of syncing it — AD "
                        "username, Domain and owner cleared, every other value kept; no source touches it again.",
        ),
        "preview_draft": Param(
            False, type="boolean", title="Preview draft rules",
            description=f"A dry run with {path.stem}.draft.yaml instead of the live rules: the report lists what "
                        "the draft changes and what it would insert, update, delete or disable. Writes nothing.",
        ),
        # what the console sends when the rules folder cannot be written (a read-only bundle)
        "draft_rules": Param(
            None, type=["null", "string"], title="Draft rules (YAML)",
            description="With Preview draft: these rules instead of the draft file. They keep the live source's "
                        "name, type, connection and target. Empty: the draft file.",
        ),
    }


WRITE_BACK_PARAMS = {
    "allow_mass_write_back": Param(
        False, type="boolean", title="Allow mass write-back",
        description="For scripted runs: let this one run write back more values than write_back.max_writes "
                    "without an approval (the next run is guarded again).",
    ),
}


FILE_PARAMS = {
    "file": Param(
        "", type="string", minLength=1, title="CSV file",
        description="Name of the file inside the imports folder, e.g. staff.csv (UTF-8, comma or semicolon).",
    ),
}


def build_dag(rules: Rules, path: Path) -> DAG:
    """The DAG of one rules file: ``check_source → extract ×N → map ×N → diff (+ guard) → (approve) → apply (+ Asset
    event) → report``."""
    with DAG(**_dag_arguments(rules, path)) as dag:
        _add_tasks(rules, str(path))
    return dag


def _dag_arguments(rules: Rules, path: Path) -> dict[str, Any]:
    """What the DAG itself carries: id, daily schedule, one active run, docs, tags, Params, retries."""
    sched = rules.schedule
    timetable = CronTriggerTimetable(sched.cron, timezone=sched.timezone) if sched.cron else None
    return dict(
        dag_id=dag_id(rules),
        schedule=timetable,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["usersync", rules.source.type],
        doc_md=_doc(rules, path),
        description=f"Sync users from {rules.source.name}: dry run = report only, nothing written; a run over "
                    "the mass-delete guard waits for approval (Required Actions).",
        params={**PARAMS, **(FILE_PARAMS if rules.source.on_demand else {}),
                **(DELTA_PARAMS if rules.source.delta else {}), **one_user_params(rules, path),
                **(WRITE_BACK_PARAMS if rules.write_back else {})},
        default_args={"retries": rules.run.retries, "retry_delay": timedelta(minutes=rules.run.retry_delay_minutes)},
    )


def _add_tasks(rules: Rules, rules_path: str) -> None:
    """The run's tasks, wired, in the DAG being defined.

    Each task is a named three-line wrapper rather than one generated from a table: Airflow reads each
    function's name, signature and decorator arguments (mapped inputs, trigger rules, outlets, timeouts), and a
    reader of the DAG should see each task as it is. Kept in one function so the wiring at the end reads whole.
    """
    # the adapters are imported when a task runs, not when the scheduler parses this DAG (pandas is heavy)
    step_timeout = timedelta(minutes=rules.run.step_timeout_minutes)  # a hung step never holds the run for ever

    @task(multiple_outputs=False, execution_timeout=step_timeout)
    def check_source() -> list:
        from usersync_airflow.dag import tasks

        return tasks.check_source(rules_path)

    @task(multiple_outputs=False, execution_timeout=timedelta(minutes=rules.run.extract_timeout_minutes))
    def extract(job: Any) -> Any:
        from usersync_airflow.dag import tasks

        return tasks.extract(rules_path, job["source_info"], job["partition"])

    @task(task_id="map", multiple_outputs=False, execution_timeout=step_timeout)
    def map_users(extracted: Any) -> Any:
        from usersync_airflow.dag import tasks

        return tasks.map_users(rules_path, extracted)

    # the plan goes to XCom under its own key; diff's return value is the branch it takes (the guard's verdict)
    @task.branch(multiple_outputs=False, execution_timeout=step_timeout)
    def diff(mapped: Any) -> str:
        from usersync_airflow.dag import tasks

        return tasks.diff(rules_path, mapped)

    approve = BlockedRunApproval(rules_path=rules_path, timeout_hours=rules.safety.approval_timeout_hours)

    # after the guard passed (approve skipped) or an admin approved; not after a rejection or a failure. It emits
    # the users table's Asset event itself, through an alias, only when it wrote something
    @task(multiple_outputs=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
          outlets=[users_alias(rules.target.conn_id)], execution_timeout=step_timeout)
    def apply(outlet_events: Any = None) -> Any:
        from usersync_airflow.dag import tasks

        return tasks.apply(rules_path, outlet_events)

    @task(retries=0, trigger_rule=TriggerRule.ALL_DONE, execution_timeout=step_timeout)
    def report() -> str:
        from usersync_airflow.dag import reporting

        return reporting.report(rules_path)

    # one extract and one map per partition: in parallel under the scheduler, spread over Celery workers;
    # check_source decides how many (all of source.partitions for a full read, one for a delta)
    records = extract.expand(job=check_source())
    plan = diff(map_users.expand(extracted=records))
    applied = apply()
    plan >> [approve, applied]
    approve >> applied
    reported = report()
    applied >> reported
    if rules.write_back is not None:
        _add_write_back(rules, rules_path, records, applied, reported)


def _add_write_back(rules: Rules, rules_path: str, records: Any, applied: Any, reported: Any) -> None:
    """``apply → plan_write_back (+ guard) → (approve_write_back) → write_back → report``, for rules with a
    ``write_back`` section: after a successful apply only (or a dry run's), never after a failed or rejected one."""
    step_timeout = timedelta(minutes=rules.run.step_timeout_minutes)

    @task.branch(multiple_outputs=False, execution_timeout=step_timeout)
    def plan_write_back(extracted: Any) -> str:
        from usersync_airflow.dag import write_back_tasks

        return write_back_tasks.plan_write_back(rules_path, extracted)

    approve = BlockedRunApproval(rules_path=rules_path, timeout_hours=rules.safety.approval_timeout_hours,
                                 task_id="approve_write_back", options=WRITE_BACK_OPTIONS,
                                 asked_by="plan_write_back", guard="write-back")

    @task(multiple_outputs=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, execution_timeout=step_timeout)
    def write_back() -> Any:
        from usersync_airflow.dag import write_back_tasks

        return write_back_tasks.write_back(rules_path)

    planned = plan_write_back(records)
    written = write_back()
    applied >> planned
    planned >> [approve, written]
    approve >> written
    written >> reported


def build_dags(directory: Path | None = None, only: str | None = None) -> tuple[dict[str, DAG], dict[str, RulesError]]:
    """Every valid rules file becomes a DAG; invalid ones are returned as errors, by file.

    ``only``: the one DAG a task process needs (Airflow's parsing context names it) — the others are not built,
    so a task's start does not grow with the number of sources."""
    valid, errors = load_rules_dir(directory or rules_dir())
    dags = {dag_id(rules): build_dag(rules, path) for rules, path in valid.values()
            if only is None or dag_id(rules) == only}
    return dags, errors
