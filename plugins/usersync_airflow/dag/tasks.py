"""What each task of a sync DAG does: load the rules, call the domain step on the run folder, hand back a
small JSON reference for XCom (the data itself stays in the run folder, see ``run_storage``).

Every step records its failure (step, error, traceback) in XCom under ``usersync_error`` before failing, so
the report task can say where and why a run stopped. Failures a retry cannot fix (bad credentials, untrusted
certificate, wrong object path, empty directory, invalid rules, an undefined connection, a blocked plan) fail at
once; an unreachable server or an unexpected error is retried as the rules' ``run.retries`` say.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException
from airflow.sdk.log import redact

from usersync.core.errors import Blocked, retryable
from usersync.core.run_folder import MANIFEST, RunDataError, RunFolder
from usersync.plan.approval import REQUEST_LINES, ApprovalRequest, approval_request, may_override, override_refused
from usersync.plan.change_guard import CHANGES, ChangeVerdict, check_changes, field_shifts
from usersync.plan.change_tables import ChangeTables, preview
from usersync.plan.guard import ASK, Guard, GuardVerdict, RunMode, RunVerdicts, route
from usersync.plan.health import skip_reason
from usersync.plan.read_plan import Watermark
from usersync.plan.safety import REMOVALS, Verdict, check_removals, person
from usersync.rules import Rules, load_rules
from usersync.rules.loader import draft_from_text, load_draft
from usersync.run import confirm, pipeline
from usersync.run.handover import Extracted, Mapped, PlanRef, SourceInfo, StepFailure
from usersync.run.params import CONTROL, BadParameter, one_account, printable, run_to_undo
from usersync.run.summaries import COUNTS, write_run_record
from usersync.run.undo import nothing_read, undo_step
from usersync.store import source_health
from usersync.store.apply import apply_tables
from usersync.store.detach import DetachError
from usersync.store.owned import owned_count
from usersync.store.source_health import health_of
from usersync.store.user_log import RunStamp, rules_file_hash
from usersync_airflow.dag import xcom
from usersync_airflow.dag.assets import users_alias, users_asset
from usersync_airflow.dag.run_storage import run_folder
from usersync_airflow.hooks import UsersDbHook
from usersync_airflow.hooks.connections import open_source
from usersync_airflow.ui.links import change_set_link

log = logging.getLogger(__name__)
CONFLICT_LINES = 200


def step(name: str) -> Callable:
    """Record a failing step for the report, and fail at once when retrying cannot help."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except AirflowSkipException:  # not a failure: a quarantined source's scheduled run
                raise
            except Exception as exc:
                blocked = isinstance(exc, Blocked)
                # redact: connection passwords are registered with Airflow's masker; keep them out of XCom
                failure = StepFailure(step=name, type=type(exc).__name__, error=str(redact(str(exc))),
                                      traceback=str(redact(traceback.format_exc())), blocked=blocked)
                reading = getattr(exc, "reading", None)  # e.g. a delta read that went full, then found nobody
                if reading:
                    failure["reading"] = reading
                xcom.record_failure(get_current_context()["ti"], failure)
                # the domain's errors say whether a retry can help; a connection Airflow lacks is configuration
                if not retryable(exc) or isinstance(exc, AirflowNotFoundException):
                    raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
                raise
            # what the step itself took, apart from Airflow's task start-up (bench/ reads it for its breakdown)
            log.info("%s: step done in %.3f s", name, time.perf_counter() - started)
            return result

        return wrapper

    return decorate


def rules_at(path: str) -> Rules:
    """The rules this run follows: the live file, or its draft when the run previews it."""
    if previewing():
        return draft_rules(path)
    return load_rules(Path(path))


def draft_rules(path: str, live: Rules | None = None) -> Rules:
    """The draft a preview follows: the rules sent with the run (``draft_rules``), else the draft file."""
    sent = params().get("draft_rules")
    if sent:
        return draft_from_text(sent, live or load_rules(Path(path)))
    return load_draft(path, live)


def params() -> dict[str, Any]:
    return dict(get_current_context()["params"])


def previewing() -> bool:
    """A preview of the draft rules: always a dry run."""
    return bool(params().get("preview_draft"))


def dry_run() -> bool:
    return bool(params().get("dry_run")) or previewing()


def undoing() -> str | None:
    """The run this run undoes (the ``undo_run`` parameter), or None for a sync."""
    return run_to_undo(params().get("undo_run"))


def account() -> str | None:
    """The one account this run syncs (the ``account`` parameter), or None for the whole source; BadParameter
    when it holds control characters."""
    return one_account(params().get("account"))


def account_shown() -> str | None:
    """The ``account`` parameter as a report may show it (control characters escaped), checked or not."""
    raw = str(params().get("account") or "").strip()
    return (printable(raw)[1:-1] if CONTROL.search(raw) else raw) or None


def run_time() -> datetime:
    """The run's time: when it was due (a scheduled run's data interval end, a manual run's trigger time). Days
    of absence are counted between these, so the daily run 30 days later is exactly 30 days on."""
    run = get_current_context()["dag_run"]
    return (run.run_after or run.logical_date or datetime.now(UTC)).astimezone(UTC)


def override(rules: Rules, name: str) -> bool:
    """A trigger-time override (``allow_mass_delete``, ``allow_mass_write_back``, ``keep_as_local``) this run
    honours: set, and triggered by an approver or by no person (four eyes); a refused one goes to the report."""
    if not params().get(name):
        return False
    ctx = get_current_context()
    who = triggered_by()
    if may_override(rules.approvals, who):
        return True
    line = override_refused(name, who)
    log.warning("%s", line)
    xcom.record_refused_override(ctx["ti"], line)
    return False


def triggered_by() -> str | None:
    """The Airflow user who triggered this run (None: the scheduler; ``dag_test``: the Airflow host itself)."""
    return getattr(get_current_context()["dag_run"], "triggering_user_name", None)


def keep_as_local(rules: Rules) -> bool:
    """A single-account run asked to detach that account's user (the ``keep_as_local`` parameter)."""
    if params().get("keep_as_local") and not account():
        raise DetachError("keep_as_local needs the account parameter: name the one account whose user becomes "
                          "a local user (or use usersync-db detach for a list); nothing was written")
    return override(rules, "keep_as_local")


def run_started() -> datetime:
    """When this run began (its check_source task started), not when it was due: the report of a late or
    back-dated run says when it ran and how long it took."""
    manifest = folder().read_json(MANIFEST) or {}
    if manifest.get("started"):
        return datetime.fromisoformat(manifest["started"])
    return get_current_context()["dag_run"].start_date or datetime.now(UTC)


def folder() -> RunFolder:
    """This run's folder of run data (shared by every task of the run, wherever it runs)."""
    ctx = get_current_context()
    return run_folder(ctx["ti"].dag_id, ctx["run_id"])


@step("check_source")
def check_source(rules_path: str) -> list[dict[str, Any]]:
    """Prove the users database is at this code's schema and the source can be read; for delta sources,
    choose delta or full. Returns the extract jobs: partition and where and how to read (JSON, no secrets)."""
    started = datetime.now(UTC)
    rules = rules_at(rules_path)
    hook = UsersDbHook(rules.target.conn_id)
    try:
        engine = hook.get_conn()  # refuses a database behind or ahead of this code's schema, naming the fix
        _backed_off(rules, engine)
        if undoing():
            return _undo_jobs(rules, started)
        with open_source(rules, params()) as source:
            # a draft's scope may differ from the live rules': a preview of a delta source reads in full
            full = "a draft preview reads in full (the draft's scope may differ)" if previewing() else \
                bool(params().get("full_sync"))
            info = pipeline.check_step(source, rules, engine, full_sync=full, account=account())
            keep_as_local(rules)  # refused before the extract reads anything when the account is missing
    finally:
        hook.close()

    log.info("source %s (%s) readable at %s", rules.source.name, rules.source.type, info["url"])
    run = folder()
    run.write_manifest(source=rules.source.name, run_id=get_current_context()["run_id"], dry_run=dry_run(),
                       started=started.isoformat())
    log.info("run data of this run: %s", run)
    # one extract job per partition: all of source.partitions for a full read, one for a delta
    return [{"partition": p, "source_info": info} for p in pipeline.partitions(rules, info)]


def scheduled() -> bool:
    """A run the schedule started (not a person, an API call or an asset)."""
    return str(get_current_context()["dag_run"].run_type).lower().endswith("scheduled")


def _backed_off(rules: Rules, engine: Any) -> None:
    """A scheduled run of a quarantined source before its next try does not touch the source: it ends skipped,
    saying why (``usersync.plan.health``); a manual run always tries."""
    why = skip_reason(health_of(source_health.load(engine, rules.source.name)), scheduled(), run_time())
    if why:
        log.warning("not run: %s", why)
        xcom.record_skip(get_current_context()["ti"], why)
        raise AirflowSkipException(why)


def _undo_jobs(rules: Rules, started: datetime) -> list[dict[str, Any]]:
    """An undo reads no source: one empty extract job, so the diff step plans the undo from the per-user log."""
    if account() or previewing():
        raise BadParameter("undo_run cannot be combined with account or preview_draft: an undo reverses a whole "
                           "run; nothing was read or written")
    info = SourceInfo(url=f"the per-user log of {rules.source.name}",
                      reading=f"no source read: the undo of run {undoing()}, from the per-user log")
    log.info("this run undoes run %s of %s: the source is not read", undoing(), rules.source.name)
    folder().write_manifest(source=rules.source.name, run_id=get_current_context()["run_id"], dry_run=dry_run(),
                            started=started.isoformat())
    return [{"partition": 0, "source_info": info}]


def source_info() -> SourceInfo:
    """What ``check_source`` found (the same in each of its extract jobs); {} when it failed."""
    return xcom.source_info(get_current_context()["ti"])


@step("extract")
def extract(rules_path: str, source_info: SourceInfo, partition: int) -> Extracted:
    rules = rules_at(rules_path)
    if undoing():
        return nothing_read(folder(), rules.source_attributes())
    with open_source(rules, params()) as source:
        return pipeline.extract_step(source, source_info, rules.source_attributes(), folder(), partition,
                                     rules.source.partition_count, rules)


@step("map")
def map_users(rules_path: str, extracted: Extracted) -> Mapped:
    return pipeline.map_step(rules_at(rules_path), extracted, folder())


@step("diff")
def diff(rules_path: str, mapped: Any) -> str:
    """The change set (to the run folder; its reference to XCom), then the mass-delete guard on it, before anything
    is written: returns the task to follow — ``approve`` when a live run is blocked and approvals are on (the run
    waits for an admin), else ``apply`` (which refuses a blocked plan)."""
    rules = rules_at(rules_path)
    parts: list[Mapped] = [mapped[i] for i in range(len(mapped))]  # by index: iterating probes one past the end
    hook = UsersDbHook(rules.target.conn_id)
    try:
        engine = hook.get_conn()
        if undoing():
            plan_ref = undo_step(rules.source.name, str(undoing()), engine, folder(), as_of=run_time())
        else:
            plan_ref = pipeline.diff_step(rules, parts, engine, folder(), as_of=run_time(),
                                          keep_as_local=keep_as_local(rules))
            plan_ref = _confirmed(rules, plan_ref, parts, engine, limit=rules.safety.max_confirmations)
    finally:
        hook.close()
    xcom.record_plan(get_current_context()["ti"], plan_ref)
    return _guard(rules, plan_ref)


def _confirmed(rules: Rules, plan_ref: PlanRef, parts: list[Mapped], engine: Any, limit: int | None) -> PlanRef:
    """The plan with its removals confirmed by the source, for sources whose listing can shift while it is read
    (``usersync.run.confirm``); removals over ``limit`` stay unconfirmed (the guard then asks for approval), with
    the mapped partitions kept so that apply can confirm them once approved."""
    info = source_info()
    if not plan_ref["removals"] or not confirm.needs_confirmation(rules, info):
        return plan_ref
    with open_source(rules, params()) as source:
        confirmed = confirm.confirm_step(rules, source, info, parts, engine, folder(), plan_ref.copy(),
                                         as_of=run_time(), limit=limit)
    if confirmed["confirmation"]["waiting"]:
        confirmed["parts"] = parts
    return confirmed


def unconfirmed(plan_ref: PlanRef) -> int:
    """Removals the source has not confirmed yet (over safety.max_confirmations)."""
    return int((plan_ref.get("confirmation") or {}).get("waiting", 0))


def verdicts(rules: Rules, plan_ref: PlanRef, approver: str | None = None) -> tuple[Verdict, ChangeVerdict]:
    """The mass-delete and change guards' verdicts on a plan, with this run's overrides and approval."""
    removals = check_removals(plan_ref["removals"], plan_ref["owned"], rules.safety,
                              allow_mass_delete=override(rules, REMOVALS.override), approved_by=approver,
                              unconfirmed=unconfirmed(plan_ref), overridden_by=triggered_by())
    changes = check_changes(plan_ref.get("guard"), allow=override(rules, CHANGES.override), approved_by=approver,
                            overridden_by=person(triggered_by()))
    return removals, changes


def _guard(rules: Rules, plan_ref: PlanRef) -> str:
    removals, changes = verdicts(rules, plan_ref)
    verdict = RunVerdicts({"mass-delete": removals, "change": changes})
    ctx = get_current_context()

    asked: list[ApprovalRequest] = []

    def request() -> ApprovalRequest:
        asked.append(approval_request(rules.source.name, removals, preview(folder(), plan_ref, REQUEST_LINES),
                                      where=change_set_link(ctx["ti"].dag_id, ctx["run_id"]),
                                      timeout_hours=rules.safety.approval_timeout_hours, changes=changes))
        return asked[-1]

    following = guarded(rules, verdict, proceed="apply", ask="approve", request=request)
    for waiting in asked:  # the reports page lists the waiting run, its change set and this request
        write_run_record(folder(), {
            "source": rules.source.name, "run_id": ctx["run_id"], "dag_id": ctx["ti"].dag_id, "mode": "live",
            "status": "WAITING FOR APPROVAL", "started": run_started().isoformat(timespec="seconds"),
            "ended": None, "counts": {k: plan_ref["counts"].get(k, 0) for k in COUNTS}, "plan": plan_ref,
        }, f"{waiting.subject}\n\n{waiting.body}\n")
    return following


def guarded(rules: Rules, verdict: GuardVerdict, *, proceed: str, ask: str,
            request: Callable[[], ApprovalRequest]) -> str:
    """A guard's verdict before a write, recorded for the report; the task to follow (``usersync.plan.guard``):
    ``ask`` — with the approval ``request`` recorded for the approval task — when a live run is blocked and
    approvals are on, else ``proceed`` (whose writing step refuses a blocked verdict)."""
    ti = get_current_context()["ti"]
    xcom.record_verdict(ti, verdict.to_json())
    log.info("%s", verdict.message)
    mode = RunMode(dry_run=dry_run(), one_account=account() is not None, approvals=rules.safety.approve_blocked_runs)
    if route(verdict, mode) != ASK:
        return proceed
    xcom.record_request(ti, request().to_json())
    log.info("the run waits for an admin's approval (Required Actions); no answer within %g h rejects it",
             rules.safety.approval_timeout_hours)
    return ask


def enforce(verdict: GuardVerdict, guard: Guard | None = None) -> None:
    """The writing step's check: a blocked verdict, recorded for the report, fails the step having written
    nothing (a dry run writes nothing and goes on, to list what it would have written). ``guard`` names the
    error; the run's guards (``RunVerdicts``) name their own."""
    xcom.record_verdict(get_current_context()["ti"], verdict.to_json())
    if dry_run():
        return
    if isinstance(verdict, RunVerdicts):
        REMOVALS.enforce(verdict.verdicts["mass-delete"])
        CHANGES.enforce(verdict.verdicts["change"])
    elif guard is not None:
        guard.enforce(verdict)


def approved_by() -> str | None:
    """Who approved this blocked run, if someone did (the ``approve`` task's answer)."""
    decision = xcom.decision(get_current_context()["ti"])
    return decision.by if decision and decision.approved else None


def _keep_local(plan: ChangeTables, plan_ref: PlanRef) -> None:
    """An admin answered "Keep them as local users": the planned removals become detaches, saved as the plan this
    run applied (the report and the change set read that one)."""
    ti = get_current_context()["ti"]
    decision = xcom.decision(ti)
    if decision is None or not decision.keep_local:
        return
    plan.keep_as_local(decision.reason)
    ref = plan_ref.copy()
    ref.update(plan.save(folder(), prefix="applied"))
    xcom.record_plan(ti, ref)
    log.info("%s: %d user(s) to detach instead of removing them", decision.line(), plan.detaches.num_rows)


@step("apply")
def apply(rules_path: str, outlet_events: Any) -> dict[str, Any]:
    """Safety check, then write — or, in a dry run, only say what would be written. A live run that wrote
    something emits the users table's Asset event (none otherwise)."""
    rules = rules_at(rules_path)
    ti = get_current_context()["ti"]
    plan_ref = xcom.plan_ref(ti)
    if plan_ref is None:
        raise RunDataError("no change set from the diff task of this run")
    allowed = override(rules, REMOVALS.override)
    removals, changes = verdicts(rules, plan_ref, approved_by())
    verdict = RunVerdicts({"mass-delete": removals, "change": changes})
    log.info("%s", verdict.message)
    enforce(verdict)
    if dry_run():
        log.info("dry run: nothing written; the report lists the %d change(s) this run would apply; the plan "
                 "stays in %s/plan for inspection; no asset event", plan_ref["writes"], folder())
        return {"dry_run": True, "written": {}}
    if unconfirmed(plan_ref):  # approved (or allowed): every removal is confirmed now, before anything is written
        hook = UsersDbHook(rules.target.conn_id)
        try:
            plan_ref = _confirmed(rules, plan_ref, plan_ref["parts"], hook.get_conn(), limit=None)
        finally:
            hook.close()
        xcom.record_plan(ti, plan_ref)
        log.info("%d removal(s) confirmed after approval; %d user(s) to remove", plan_ref["confirmation"]["asked"],
                 plan_ref["removals"])
    plan = ChangeTables.load(folder(), plan_ref)
    _recheck(rules, plan, plan_ref, allowed)
    _keep_local(plan, plan_ref)
    read = source_info().get("read")  # absent on single-account runs: they never move the watermark
    watermark = Watermark.from_json(read["watermark"]) if read else None
    if watermark is not None and plan_ref.get("cursor"):  # Graph: the delta link this run's read ended with
        watermark = dataclasses.replace(watermark, read=watermark.read.with_(cursor=plan_ref["cursor"]))
    hook = UsersDbHook(rules.target.conn_id)
    try:
        stamp = _stamp(rules, rules_path)
        written = apply_tables(hook.get_conn(), plan, watermark=watermark, stamp=stamp,
                               read=pipeline.read_to_keep(folder()) if stamp.full_read else None)
    finally:
        hook.close()
    log.info("applied to the users table: %s", written)
    conflicts = [f"{c.username}: {c.reason}" for c in plan.conflicts]
    if watermark is not None:
        log.info("read position stored for %s: %s", watermark.read.server,
                 "the delta link for the next run" if watermark.read.get("cursor") else watermark.read.position)
    _announce(rules, {k: v for k, v in written.items() if v}, outlet_events)
    # the report lists them (XCom stays small: the first lines and the count; each is in this task's log too)
    if plan.recorded:
        log.info("cases: %s", plan.recorded)
    return {"dry_run": False, "written": written, "conflicts": conflicts[:CONFLICT_LINES], "conflict_count": len(conflicts),
            "cases": plan.recorded}


def _stamp(rules: Rules, rules_path: str) -> RunStamp:
    """What this run's records in the per-user log say of it: run, rules file, who let it through a guard."""
    ctx = get_current_context()
    decision = xcom.decision(ctx["ti"])
    answer = decision.line() if decision and decision.approved else None
    lifted = [name for name in (REMOVALS.override, CHANGES.override)
              if params().get(name) and may_override(rules.approvals, triggered_by())]
    if answer is None and lifted:
        answer = f"{' and '.join(lifted)}, set by {triggered_by() or 'a run no person triggered'}"
    undone = undoing()
    whole = not undone and not account() and not pipeline.is_delta(source_info())
    return RunStamp(run_id=ctx["run_id"], rules_hash=rules_file_hash(Path(rules_path).read_bytes()),
                    approved_by=answer[:256] if answer else None, full_read=whole,
                    note=f"undo of run {undone}" if undone else None)


def _recheck(rules: Rules, plan: ChangeTables, plan_ref: PlanRef, allowed: bool) -> None:
    """The guards once more, on what is about to be written: the removals and the changes per field in the tables
    just loaded against the users this source owns in the users table now — never on counts handed over in XCom
    (the read's drop is a fact of the read, judged again as the diff found it)."""
    hook = UsersDbHook(rules.target.conn_id)
    try:
        owned = owned_count(hook.get_conn(), rules.source.name)
    finally:
        hook.close()
    removals = check_removals(plan.removals, owned, rules.safety, allow_mass_delete=allowed, approved_by=approved_by())
    found = {**(plan_ref.get("guard") or {}), "fields": [
        f.to_json() for f in field_shifts(plan.updates, owned, rules.field_limits(), rules.safety.guard_min_users)]}
    changes = check_changes(found, allow=override(rules, CHANGES.override), approved_by=approved_by())
    verdict = RunVerdicts({"mass-delete": removals, "change": changes})
    if verdict.blocked:
        enforce(verdict)


def _announce(rules: Rules, written: dict[str, int], outlet_events: Any) -> None:
    """The users table's Asset event, through apply's alias outlet, when this run wrote something."""
    if not written:
        log.info("nothing written to the users table: no asset event")
        return
    asset = users_asset(rules.target.conn_id)
    outlet_events[users_alias(rules.target.conn_id)].add(
        asset, extra={"source": rules.source.name, "run_id": get_current_context()["run_id"], **written})
    log.info("asset event for %s: %s", asset.name, written)
