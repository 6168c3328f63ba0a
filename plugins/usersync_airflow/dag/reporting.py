"""The final task of every sync DAG: build the run's report from what the steps left in XCom, write it to
the task log and the reports folder, prune old reports, send the alarm or warning mail, and fail the run when
a step failed or the plan was blocked (so the DAG run's state tells the truth)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, get_current_context
from airflow.sdk.exceptions import AirflowFailException

from usersync.core.paths import configured
from usersync.core.run_folder import MANIFEST, RunDataError, prune_runs
from usersync.explain import explanation
from usersync.explain.outcome import result_line
from usersync.plan.change_tables import preview
from usersync.rules import Rules, RulesError
from usersync.rules.compare import rules_changes
from usersync.rules.loader import draft_path, load_rules
from usersync.run.report import (
    BLOCKED,
    FAILED,
    AccountExplanation,
    Cases,
    Conflicts,
    DraftChanges,
    RunReport,
    WriteBack,
    mask,
    prune_reports,
    write_report,
)
from usersync.run.summaries import write_run_record
from usersync_airflow.dag import xcom
from usersync_airflow.dag.alarms import send_report_mail
from usersync_airflow.dag.metrics import emit as emit_metrics
from usersync_airflow.dag.run_storage import dag_folder
from usersync_airflow.dag.tasks import (
    account_shown,
    draft_rules,
    dry_run,
    folder,
    params,
    previewing,
    run_started,
    run_time,
    source_info,
)
from usersync_airflow.ui.links import cases_link, history_link, report_link

if TYPE_CHECKING:
    from usersync_airflow.hooks import UsersDbHook

log = logging.getLogger(__name__)
XCOM_REPORT_CHARS = 16_000


def reports_dir(rules: Rules) -> Path:
    return configured(rules.report.directory, "USERSYNC_REPORTS_DIR", "reports")


def _secrets(rules: Rules) -> list[str]:
    """Passwords of every connection this run used, to mask them wherever they might appear."""
    found = []
    for conn_id in (rules.source.connection_id(), rules.target.conn_id, rules.alarms.smtp_conn_id):
        if not conn_id:
            continue
        try:
            password = BaseHook.get_connection(conn_id).password
        except Exception:  # noqa: BLE001 - an undefined connection has no secret to hide
            continue
        if password:
            found.append(password)
    return found


def _preview(rules: Rules, plan_ref: Mapping[str, Any] | None):
    """The plan as the report shows it: true counts, the first lines of each kind of change, every skip."""
    if not plan_ref:
        return None
    try:
        return preview(folder(), plan_ref, rules.report.max_change_lines)
    except RunDataError as exc:  # the report still goes out, saying what it could not read
        log.error("%s", exc)
        return None


def build_report(rules: Rules) -> RunReport:
    ctx = get_current_context()
    ti = ctx["ti"]
    failure = xcom.failure(ti)
    info = source_info()
    plan_ref = xcom.plan_ref(ti)
    applied = xcom.applied(ti)
    warnings = list(info.get("warnings", [])) + list((plan_ref or {}).get("warnings", [])) + xcom.refused_overrides(ti)
    started = run_started()
    written_back, wave = xcom.write_back(ti)
    wave_decision = xcom.decision(ti, "approve_write_back")
    return RunReport(
        source=rules.source.name,
        run_id=ctx["run_id"],
        dry_run=dry_run(),
        account=account_shown(),
        started=started,
        ended=datetime.now(UTC),
        plan=_preview(rules, plan_ref),
        # apply's verdict when it ran (it knows about an approval), else the guard's
        verdict=xcom.verdict(ti),
        approval=decision.to_json() if (decision := xcom.decision(ti)) else None,
        failure=failure,
        skipped=xcom.skipped(ti),
        warnings=warnings,
        max_change_lines=rules.report.max_change_lines,
        run_data=str(folder()) if plan_ref else None,
        reading=(plan_ref or {}).get("reading") or (failure.get("reading") if failure else None) or info.get("reading"),
        server=info.get("url"),
        sections=[
            *([AccountExplanation(_explanation(failure, applied))] if account_shown() else []),
            WriteBack(written_back, wave, wave_decision.to_json() if wave_decision else None),
            Conflicts(applied.get("conflicts") or [], applied.get("conflict_count", 0)),
            Cases(recorded=applied.get("cases") or {}, planned=(plan_ref or {}).get("counts", {}),
                  link=cases_link(rules.source.name), limit=rules.report.max_change_lines),
        ],
    )


def _cases(db: UsersDbHook, rules: Rules, run_report: RunReport) -> list[int]:
    """Fill the report's cases section from the users database: live cases per status, and the open ones no
    report announced yet (returned, to mark announced once the mail is out). A database that cannot be read
    leaves the section with the run's own counts."""
    from usersync.store.cases import summary, unannounced

    section = next(s for s in run_report.sections if isinstance(s, Cases))
    if run_report.dry_run or run_report.failure:
        return []
    try:
        engine = db.get_conn()
        section.live = summary(engine, rules.source.name)
        section.fresh = unannounced(engine, rules.source.name) if section.live.get("open") else []
    except Exception as exc:  # noqa: BLE001 - the report goes out all the same, saying what it could not read
        log.error("could not read the cases of %s: %s", rules.source.name, exc)
        return []
    return [c["id"] for c in section.fresh]


def _health(db: UsersDbHook, rules: Rules, run_report: RunReport) -> None:
    """A failed run goes into the source's health (``usersync.plan.health``): the report says whether the source
    is failing or quarantined, and a failure alarmed already sends no alarm again. A guard that blocked is no
    failure of the source; a skipped run records nothing."""
    from usersync.plan.health import FAILURES_BEFORE_QUARANTINE, QUARANTINED, quarantine_line
    from usersync.store.source_health import record_failure

    failure = run_report.failure
    if run_report.skipped or not failure or failure.get("blocked"):
        return
    reason = (failure.get("error") or "").splitlines()[0][:300] if failure.get("error") else "no message"
    try:
        failed = record_failure(db.get_conn(), rules.source.name, failure["type"], reason, run_time(),
                                run_report.run_id, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - the users database may be what failed: the alarm goes out all the same
        log.error("could not record the failure in the source's health: %s", exc)
        return
    h = failed.health
    since = h.first_failure_at.isoformat(timespec="minutes") if h.first_failure_at else "?"
    if h.state == QUARANTINED:
        run_report.health = quarantine_line(h)
    else:
        run_report.health = (f"FAILING: {h.failures} failed run(s) in a row since {since}; quarantined after "
                             f"{FAILURES_BEFORE_QUARANTINE[h.failure_kind or 'other']} of this kind")
    if failed.alarm is None:
        run_report.said = f"the same failure was alarmed already ({h.failures} failed runs in a row since {since})"
    log.info("source health: %s%s", run_report.health, f" (alarm: {failed.alarm})" if failed.alarm else "")


def _repeats(db: UsersDbHook, rules: Rules, run_report: RunReport) -> None:
    """How many runs in a row skipped each of this run's skipped accounts for the same bad data (the per-user
    log's count): the report parks those skipped again and again."""
    from usersync.store.history import repeated_skips

    if not (run_report.plan and run_report.plan.skipped):
        return
    try:
        run_report.repeats = repeated_skips(db.get_conn(), rules.source.name)
    except Exception as exc:  # noqa: BLE001 - the report lists every skip in full then, rather than none
        log.error("could not read the repeated skips of %s: %s", rules.source.name, exc)


def _notify(rules: Rules, run_report: RunReport) -> None:
    """The run's notice to the rules' ``notify:`` channels: the same news as the mail (an alarm not repeated, no
    notice for a skipped run), ``success`` for the channels that ask for it, with the link to the report."""
    from usersync.run.notice import report_notice
    from usersync_airflow.dag.notify import send_notices

    event = run_report.mail_kind(notify_on_success=True)
    if not rules.notify or event is None:
        return
    ctx = get_current_context()
    link = report_link(ctx["ti"].dag_id, run_report.run_id)
    send_notices(rules.notify, report_notice(run_report, event, link), ctx)


def _announced(db: UsersDbHook, ids: list[int]) -> None:
    from usersync.store.cases import announce

    if not ids:
        return
    try:
        announce(db.get_conn(), ids)
    except Exception as exc:  # noqa: BLE001 - announced again next time, rather than never
        log.error("could not mark %d case(s) as announced: %s", len(ids), exc)


def _explanation(failure, applied) -> list[str]:
    """The account's explanation as the steps left it, with the result of this run as its last line."""
    sections, facts = explanation.load(folder())
    sections.setdefault("outcome", []).append(result_line(facts, dry_run(), applied, failure))
    sections["outcome"].append(f"history of this account across runs and sources: {history_link(account_shown() or '')}")
    return explanation.render(account_shown() or "", sections)


def _draft(rules_path: str, run_report: RunReport, live: Rules) -> None:
    """A preview names its draft and what the draft changes; a draft that will not load is said, not hidden."""
    sent = bool(params().get("draft_rules"))
    run_report.draft = "the draft sent with the run (console)" if sent else draft_path(rules_path).name
    try:
        changes = rules_changes(live, draft_rules(rules_path, live))
    except RulesError as exc:
        changes = [f"the draft cannot be used: {exc}"]
    run_report.sections.insert(0, DraftChanges(changes))


def report(rules_path: str) -> str:
    started = time.perf_counter()
    rules = load_rules(rules_path)  # the live file's report and alarm settings, also for a draft's preview
    from usersync_airflow.hooks import UsersDbHook  # at run time: DAG parsing stays free of database drivers

    db = UsersDbHook(rules.target.conn_id)  # one engine for the report's reads and writes of the users database
    try:
        run_report = build_report(rules)
        _health(db, rules, run_report)
        _repeats(db, rules, run_report)
        fresh = _cases(db, rules, run_report)
        if previewing():
            _draft(rules_path, run_report, rules)
        secrets = _secrets(rules)
        text = run_report.render(secrets=secrets)
        for line in text.splitlines():
            log.info("%s", line)
        path = _write(rules, run_report, text)
        explained = next((s.lines for s in run_report.sections if isinstance(s, AccountExplanation) and s.lines),
                         None)
        _record_run(run_report, text, mask("\n".join(explained) + "\n", secrets) if explained else None)
        _prune_run_data(rules)
        _prune_history(db, rules)
        send_report_mail(run_report, text, rules.alarms, get_current_context())
        _notify(rules, run_report)
        emit_metrics(run_report)
        _announced(db, fresh)  # in this report (and its mail, when mail is set up): not again until it changes
    finally:
        db.close()
    log.info("report: step done in %.3f s", time.perf_counter() - started)
    if run_report.status in (FAILED, BLOCKED):
        raise AirflowFailException(f"run {run_report.status.lower()}: {run_report.subject()}")
    return _capped(text, path)


def _write(rules: Rules, run_report: RunReport, text: str) -> Path | None:
    """The report into the reports folder, older ones pruned; None when the folder cannot be written."""
    reports = reports_dir(rules)
    try:
        path = write_report(text, reports, rules.source.name, run_report.run_id, run_report.started)
        log.info("report written to %s", path)
        for old in prune_reports(reports, rules.source.name, rules.report.retention_days):
            log.info("removed report older than %d days: %s", rules.report.retention_days, old)
    except OSError as exc:
        log.error("could not write the report under %s: %s", reports, exc)
        return None
    return path


def _capped(text: str, path) -> str:
    """The report for XCom: whole when short, else its head and where the full text is (XCom stays small)."""
    if len(text) <= XCOM_REPORT_CHARS:
        return text
    return text[:XCOM_REPORT_CHARS] + f"\n… (cut; the full report is in {path or 'the report task log'})\n"


def _record_run(run_report: RunReport, text: str, explained: str | None) -> None:
    """The report and a summary in the run folder, on shared storage: what the reports page lists."""
    ctx = get_current_context()
    run = folder()
    summary = {**run_report.summary(), "dag_id": ctx["ti"].dag_id, "plan": xcom.plan_ref(ctx["ti"])}
    try:
        if not (run.path / MANIFEST).exists():  # check_source failed before opening the folder: prune it later too
            run.write_manifest(source=run_report.source, run_id=run_report.run_id, dry_run=run_report.dry_run)
        write_run_record(run, summary, text, explained)
    except OSError as exc:
        log.error("could not store the report in the run folder %s: %s", run, exc)


def _prune_history(db: UsersDbHook, rules: Rules) -> None:
    """This source's records in the per-user log go after ``report.history_days`` (in bounded batches)."""
    from datetime import UTC, datetime, timedelta

    from usersync.store.history import prune

    try:
        gone = prune(db.get_conn(), datetime.now(UTC) - timedelta(days=rules.report.history_days), rules.source.name)
        if gone:
            log.info("removed %d per-user log record(s) older than %d days", gone, rules.report.history_days)
    except Exception as exc:  # noqa: BLE001 - pruning is housekeeping: the run's outcome stands, the next run retries
        log.error("could not prune the per-user log: %s", exc)


def _prune_run_data(rules: Rules) -> None:
    """Run folders go after ``report.retention_days``, as reports do (a dry run's plan stays until then)."""
    ctx = get_current_context()
    try:
        for old in prune_runs(dag_folder(ctx["ti"].dag_id), rules.report.retention_days, keep=folder().path.name):
            log.info("removed run data older than %d days: %s", rules.report.retention_days, old)
    except OSError as exc:
        log.error("could not prune old run data: %s", exc)
