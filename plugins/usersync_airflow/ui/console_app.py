"""The administrator's console: the sources page, the rules editor and the new-source wizard (routes of the
usersync app under ``/usersync``).

The rules files stay the source of truth: the editor reads a file, writes the settings changed back into it in
place (``usersync.rules.edit``) and the DAG processor picks the file up as it would a hand edit. Reading needs read
access to the source's DAG, triggering the right to trigger it, editing the right to edit it, creating a source the
right to create connections and DAGs (``ui.access``). Every write is a same-site form with this page's token, and
is recorded in the users database's ``admin_log`` (who, when, what; a go-live keeps the text it replaced).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NamedTuple
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from usersync.rules import Rules
from usersync.rules.edit import edited_text, text_diff
from usersync.rules.form import FormProblem, Input, RulesForm, form_values, rules_form, settings
from usersync.rules.loader import RulesError, draft_path, parse_rules, problem_lines
from usersync.store.admin_log import AdminAction
from usersync_airflow.ui.access import (
    User,
    form_token,
    genuine,
    may_create_source,
    may_edit,
    may_read,
    may_trigger,
    user_name,
)
from usersync_airflow.ui.airflow_dags import trigger, unpause
from usersync_airflow.ui.rules_files import broken_files, live_rules, writable, write_atomically

log = logging.getLogger(__name__)
router = APIRouter()
Said = Annotated[str, Query(max_length=500)]
Token = Annotated[str, Form(max_length=128)]
SourceName = Annotated[str, Form(max_length=64)]


def console_token(user, source: str) -> str:
    return form_token(user, source, "console")


def _source(user, source: str) -> tuple[Rules, Path, str]:
    """A readable source's live rules, path and DAG id (404 / 403 otherwise)."""
    found = live_rules().get(source)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {source!r} in the rules folder")
    if not may_read(user, found[2]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to read this DAG")
    return found


def _checked_form(user, request: Request, source: str, token: str, right: str) -> tuple[Rules, Path, str]:
    """A write to one source: same-site, this page's token, and ``right`` (edit / trigger) on its DAG."""
    if not genuine(request, token, console_token(user, source)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this form did not come from the console; nothing was done")
    rules, path, dag = _source(user, source)
    allowed = may_edit(user, dag) if right == "edit" else may_trigger(user, dag)
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not allowed to {right} this DAG")
    return rules, path, dag


def audit(rules: Rules, user, action: str, summary: str, ok: bool = True, **extra: Any) -> None:
    """Record what ``user`` did to a source in its users database's ``admin_log``."""
    record_action(rules.target.conn_id, rules.source.name, user, action, summary, ok, **extra)


def record_action(conn_id: str, source: str, user, action: str, summary: str, ok: bool = True, **extra: Any) -> None:
    """Record an action in the ``admin_log`` of users database ``conn_id`` (a new source's, before its rules)."""
    from usersync.store.admin_log import record
    from usersync_airflow.hooks import UsersDbHook

    hook = UsersDbHook(conn_id)
    try:
        record(hook.get_conn(), AdminAction(datetime.now(UTC), user_name(user), source, action, summary, ok, **extra))
    finally:
        hook.close()
    log.info("console: %s %s %s: %s", user_name(user), action, source, summary)


# --- the sources page ----------------------------------------------------------------------------------------

def _rows(user):
    from usersync_airflow.ui.source_rows import source_rows

    sources = {n: v for n, v in live_rules().items() if may_read(user, v[2])}
    triggerable = {dag for _r, _p, dag in sources.values() if may_trigger(user, dag)}
    edit = {dag for _r, _p, dag in sources.values() if may_edit(user, dag)}
    return source_rows(sources, triggerable, edit)


@router.get("/sources", response_class=HTMLResponse)
def sources_view(user: User, said: Said = "") -> HTMLResponse:
    from usersync_airflow.ui.sources_page import sources_page

    rows = _rows(user)
    tokens = {r.name: console_token(user, r.name) for r in rows if r.may_trigger}
    broken = {f: str(e.problems[0][1] if e.problems else e) for f, e in broken_files().items()} \
        if may_create_source(user) else {}
    return HTMLResponse(sources_page(rows, tokens, may_create_source(user), broken, said, writable()))


@router.get("/api/sources")
def sources_json(user: User) -> JSONResponse:
    """The sources page as JSON: one object per source the caller may read."""
    from dataclasses import asdict

    return JSONResponse([{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(r).items()}
                         for r in _rows(user)], headers={"Cache-Control": "no-store"})


RUN_KINDS = {"run": "run", "dry": "dry run", "account": "one-account dry run", "preview": "draft preview"}


@router.post("/sources/run")
def sources_run(user: User, request: Request, source: SourceName, token: Token,
                kind: Annotated[str, Form(pattern="^(run|dry|account|preview)$")],
                account: Annotated[str, Form(max_length=256)] = "",
                back: Annotated[str, Form(pattern="^(|wizard)$")] = "") -> RedirectResponse:
    """*Run now*, *Dry run*, *One account…* (a dry run of that account, explained) and *Preview draft*."""
    rules, _path, dag = _checked_form(user, request, source, token, "trigger")
    confs: dict[str, dict[str, Any]] = {"run": {}, "dry": {"dry_run": True}, "preview": {"preview_draft": True},
                                        "account": {"account": account.strip(), "dry_run": True}}
    conf = confs[kind]
    if kind == "account" and not account.strip():
        return _back("One account…: type the account first (nothing was triggered)")
    if back == "wizard" and may_edit(user, dag) and unpause(dag):  # a new source's first run
        audit(rules, user, "unpaused", f"DAG {dag} unpaused for its first run (no schedule until it is enabled)")
    run_id = trigger(dag, user, conf)
    audit(rules, user, "triggered", f"{RUN_KINDS[kind]} {run_id}", detail={"run_id": run_id, "conf": conf})
    if back == "wizard":
        return RedirectResponse(f"../new?type={quote(rules.source.type)}&name={quote(source)}&step=run&run={quote(run_id)}",
                                status.HTTP_303_SEE_OTHER)
    return _back(f"{RUN_KINDS[kind]} of {source} triggered: {run_id}")


@router.post("/sources/test")
def sources_test(user: User, request: Request, source: SourceName, token: Token) -> RedirectResponse:
    """*Test*: the source's bind and its rules' real search, as the connection's Test button runs them; the
    answer is kept for the sources page."""
    rules, _path, _dag = _checked_form(user, request, source, token, "trigger")
    ok, lines = search_lines(rules)
    audit(rules, user, "test", lines[0] if lines else "", ok)
    return _back(("Test passed: " if ok else "Test FAILED: ") + " | ".join(lines)[:400])


def search_lines(rules: Rules) -> tuple[bool, list[str]]:
    """The bind and the rules' real search, as the connection's Test button runs it: (passed, what it says)."""
    from usersync_airflow.hooks.connections import search_rules

    try:
        return search_rules(rules)
    except Exception as exc:  # noqa: BLE001 - a connection that cannot be used is the Test's answer, not a 500
        return False, [f"source {rules.source.name}: {type(exc).__name__}: {exc}"]


def _back(said: str) -> RedirectResponse:
    return RedirectResponse(f"../sources?said={quote(said[:480], safe='')}", status.HTTP_303_SEE_OTHER)


# --- the rules editor ----------------------------------------------------------------------------------------

class Editing(NamedTuple):
    """What the editor edits — the draft when there is one, else the live file — and the live file's text (each
    file read once)."""

    text: str
    what: str  # "draft" or "live"
    live: str


def _editing(path: Path) -> Editing:
    live = path.read_text(encoding="utf-8")
    draft = draft_path(path)
    return Editing(draft.read_text(encoding="utf-8"), "draft", live) if draft.exists() else Editing(live, "live", live)


def _parsed(text: str, path: Path, live: Rules) -> tuple[dict[str, Any], str]:
    """The settings a text holds, and why it does not validate ("" when it does; the live rules' settings then
    stand in: a broken draft)."""
    import yaml

    try:
        return parse_rules(yaml.safe_load(text), path).model_dump(mode="json"), ""
    except (RulesError, yaml.YAMLError) as exc:
        return live.model_dump(mode="json"), str(exc)


def _stats(dag_id: str, rules: Rules) -> tuple[dict[str, str], str]:
    """The last read's statistics per attribute the rules map, and which run they come from."""
    from usersync.run.attribute_stats import attribute_stats
    from usersync.run.summaries import read_summary
    from usersync_airflow.dag.run_storage import dag_folder

    base = dag_folder(dag_id)
    if not base.exists():
        return {}, ""
    runs = [(s.get("started") or "", d, s) for d in base.iterdir() if d.is_dir() and (s := read_summary(d))
            and s.get("kind") == "whole source" and (d / "records").exists()]
    if not runs:
        return {}, ""
    started, run_dir, summary = max(runs, key=lambda r: r[0])
    stats = attribute_stats(run_dir, rules.mapped_attributes())
    return {a: s.line() for a, s in stats.items()}, f"the read of run {summary.get('run_id', run_dir.name)} ({started})"


@router.get("/rules/{source}", response_class=HTMLResponse)
def rules_view(user: User, source: str, said: Said = "") -> HTMLResponse:
    from usersync.store.admin_log import recent
    from usersync_airflow.hooks import UsersDbHook
    from usersync_airflow.ui.editor_page import EditorView, editor_page

    rules, path, dag = _source(user, source)
    text, editing, live_text = _editing(path)
    effective, broken = _parsed(text, path, rules)
    if broken:
        said = f"{said} The draft does not validate, so the form shows the live rules: {broken}".strip()
    stats, stats_from = _stats(dag, rules)
    hook = UsersDbHook(rules.target.conn_id)
    try:
        history = recent(hook.get_conn(), source)
    except Exception as exc:  # noqa: BLE001 - the editor works without its history
        log.error("could not read the console's log from %s: %s", rules.target.conn_id, exc)
        history = []
    finally:
        hook.close()
    view = EditorView(source, path.name, rules_form(effective), editing, text_diff(live_text, text, path.name,
                      draft_path(path).name), console_token(user, source), writable(), may_edit(user, dag),
                      may_trigger(user, dag), stats, stats_from, history, said, text)
    return HTMLResponse(editor_page(view))


async def posted_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _edit(path: Path, rules: Rules, posted: dict[str, str]) -> tuple[str, list[tuple[str, str]], Editing]:
    """The posted form applied to the text being edited: (new text, problems as ``usersync rules validate``
    names them, what it started from)."""
    editing = _editing(path)
    text = editing.text
    before, _broken = _parsed(text, path, rules)
    form = rules_form(before)
    try:
        data = settings(before, form_values(form, posted))
    except FormProblem as exc:
        return text, [(exc.path, exc.reason)], editing
    try:
        after = parse_rules(data, path).model_dump(mode="json")
    except RulesError as exc:
        return text, exc.problems, editing
    return edited_text(text, before, after, inputs_of(form)), [], editing


def inputs_of(form: RulesForm) -> dict[str, Input]:
    return {i.path: i for i in form.inputs()}


@router.post("/rules/{source}/check")
async def rules_check(user: User, request: Request, source: str) -> JSONResponse:
    """Validation as the admin types: the problems, located, and the diff against the live file (no write)."""
    rules, path, _dag = _source(user, source)
    new, problems, started = _edit(path, rules, await posted_form(request))
    return JSONResponse({"problems": problems, "diff": text_diff(started.live, new, path.name, "edited"),
                         "yaml": new})


async def _valid_edit(user, request: Request, source: str, right: str) -> tuple[Rules, Path, str, str, Editing]:
    posted = await posted_form(request)
    rules, path, dag = _checked_form(user, request, source, posted.get("token", ""), right)
    new, problems, started = _edit(path, rules, posted)
    if problems:
        lines = "; ".join(problem_lines(problems))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"not saved, the rules are invalid: {lines}")
    return rules, path, dag, new, started


def _editor(source: str, said: str) -> RedirectResponse:
    return RedirectResponse(f"../{quote(source, safe='')}?said={quote(said[:480], safe='')}",
                            status.HTTP_303_SEE_OTHER)


def _needs_folder() -> None:
    if not writable():
        raise HTTPException(status.HTTP_409_CONFLICT, "the rules folder cannot be written here: download the file "
                                                      "and commit it where the rules folder comes from")


@router.post("/rules/{source}/save")
async def rules_save(user: User, request: Request, source: str) -> RedirectResponse:
    """*Save as draft*: ``<source>.draft.yaml`` beside the live file (previewed, never run on its own)."""
    rules, path, _dag, new, started = await _valid_edit(user, request, source, "edit")
    _needs_folder()
    draft = draft_path(path)
    write_atomically(draft, new)
    audit(rules, user, "draft", f"saved {draft.name}",
          detail={"diff": text_diff(started.text, new, "before", "after")}, before_text=started.text, after_text=new)
    return _editor(source, f"draft saved as {draft.name}: Preview shows what it would do; Go live makes it the rules")


@router.post("/rules/{source}/live")
async def rules_live(user: User, request: Request, source: str) -> RedirectResponse:
    """*Go live*: the edited rules replace the live file (the text replaced is kept in the log); the draft is
    consumed. The DAG processor reads the new file as it would a hand edit."""
    rules, path, _dag, new, started = await _valid_edit(user, request, source, "edit")
    _needs_folder()
    live = started.live
    write_atomically(path, new)
    draft_path(path).unlink(missing_ok=True)
    audit(rules, user, "live", f"{path.name} replaced (the previous text is kept in this log)",
           detail={"diff": text_diff(live, new, "before", "after")}, before_text=live, after_text=new)
    return _editor(source, f"{path.name} is live: the next run follows it")


@router.post("/rules/{source}/download")
async def rules_download(user: User, request: Request, source: str) -> Response:
    """Where the folder cannot be written: the edited file, to commit where the rules come from."""
    _rules, path, _dag, new, _started = await _valid_edit(user, request, source, "edit")
    return Response(new, media_type="application/yaml; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{path.name}"'})


@router.post("/rules/{source}/preview")
async def rules_preview(user: User, request: Request, source: str) -> RedirectResponse:
    """*Preview*: a dry run of the edited rules (sent with the run, so nothing needs writing), its report on the
    reports page."""
    rules, _path, dag, new, _started = await _valid_edit(user, request, source, "trigger")
    run_id = trigger(dag, user, {"preview_draft": True, "draft_rules": new})
    audit(rules, user, "triggered", f"draft preview {run_id}", detail={"run_id": run_id})
    return RedirectResponse(f"../../reports?triggered={quote(run_id, safe='')}", status.HTTP_303_SEE_OTHER)
