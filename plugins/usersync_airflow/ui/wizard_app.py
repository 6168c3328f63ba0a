"""The new-source wizard's routes (``/usersync/new…``): a source from nothing to a dry run without a shell.

Type and name → the Airflow connection, created in Airflow's metadata database (its secret stays there, encrypted
with Airflow's Fernet key) → rules from the type's example, validated as they are typed → *Test*: the bind and the
rules' real search, as a run reads → the rules file written → the DAG, read by the DAG processor without a restart
→ *Dry run* and its report → the schedule enabled. Creating needs the rights to create connections and DAG runs.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from usersync.rules.edit import edited_text, new_text
from usersync.rules.form import FormProblem, form_values, new_rules, rules_form, settings
from usersync.rules.loader import RulesError, parse_rules, problem_lines
from usersync.rules.model import TargetSpec
from usersync.sources.registry import SOURCE_TYPES
from usersync_airflow.rules_location import rules_dir
from usersync_airflow.ui.access import User, form_token, genuine, may_create_source, may_edit
from usersync_airflow.ui.airflow_dags import dag_state, unpause
from usersync_airflow.ui.console_app import (
    audit,
    console_token,
    inputs_of,
    posted_form,
    record_action,
    search_lines,
)
from usersync_airflow.ui.rules_files import live_rules, writable, write_atomically
from usersync_airflow.ui.wizard_page import NAME_PATTERN, NAME_RULE, SHOWN, WizardView, wizard_page

log = logging.getLogger(__name__)
router = APIRouter()
Text = Annotated[str, Query(max_length=250)]


def wizard_token(user) -> str:
    return form_token(user, "new source", "console")


def _creator(user, request: Request | None = None, token: str = "") -> None:
    if not may_create_source(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "creating a source needs the rights to create connections "
                                                       "and to edit and trigger DAGs")
    if request is not None and not genuine(request, token, wizard_token(user)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this form did not come from the wizard; nothing was done")


def name_problem(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        return f"name {name!r}: {NAME_RULE}"
    if name in live_rules() or (rules_dir() / f"{name}.yaml").exists():
        return f"name {name!r}: a source of that name exists already"
    return ""


def connection_exists(conn_id: str) -> bool:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return False
    return True


@router.get("/new", response_class=HTMLResponse)
def wizard(user: User, type: Text = "", name: Text = "", conn: Text = "", step: Text = "", run: Text = "",
           said: Annotated[str, Query(max_length=500)] = "") -> HTMLResponse:
    from usersync.core.run_folder import folder_name
    from usersync_airflow.ui.reports_page import run_link

    _creator(user)
    view = WizardView(list(SOURCE_TYPES), wizard_token(user), type if type in SOURCE_TYPES else "", name.strip(),
                      conn.strip(), said=said)
    if not (view.type and view.name):
        return HTMLResponse(wizard_page(view))
    if step == "run":
        found = live_rules().get(view.name)
        if found is None:
            view.problem = f"the rules file of {view.name} is not in the rules folder (or does not validate)"
            return HTMLResponse(wizard_page(view))
        view.created, dag, view.run_token = True, found[2], console_token(user, view.name)
        view.parsed, view.run_state = dag_state(dag, run)
        view.run_id = run
        if view.run_state in ("success", "failed"):
            view.report = run_link(dag, folder_name(run), "report.txt")
        return HTMLResponse(wizard_page(view))
    view.problem = name_problem(view.name)
    if view.problem:
        return HTMLResponse(wizard_page(view))
    view.conn_id = view.conn_id or f"usersync_{view.name}"
    view.connection_exists = view.type == "csv" or connection_exists(view.conn_id)
    if view.connection_exists:
        view.form = rules_form(new_rules(view.type, view.name, None if view.type == "csv" else view.conn_id))
    return HTMLResponse(wizard_page(view))


@router.post("/new/connection")
def wizard_connection(user: User, request: Request, token: Annotated[str, Form(max_length=128)],
                      type: Annotated[str, Form(max_length=32)], name: Annotated[str, Form(max_length=64)],
                      conn_id: Annotated[str, Form(max_length=250)], conn_type: Annotated[str, Form(max_length=64)],
                      host: Annotated[str, Form(max_length=1000)] = "", port: Annotated[str, Form(max_length=6)] = "",
                      login: Annotated[str, Form(max_length=500)] = "",
                      password: Annotated[str, Form(max_length=5000)] = "",
                      extra: Annotated[str, Form(max_length=20000)] = "{}") -> RedirectResponse:
    """Create the source's Airflow connection (the secret goes to Airflow only: never to a log or the rules)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    _creator(user, request, token)
    back = f"../new?type={quote(type)}&name={quote(name)}&conn={quote(conn_id)}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", conn_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"connection id {conn_id!r}: letters, digits, "
                                                                  "'_', '.' or '-' only")
    if connection_exists(conn_id):
        said = f"connection {conn_id} is already defined: the rules use it as it is (its fields were not changed)"
        return RedirectResponse(f"{back}&said={quote(said)}", status.HTTP_303_SEE_OTHER)
    try:
        extra_json = json.loads(extra or "{}")
        if not isinstance(extra_json, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"extra: not a JSON object ({exc})") from None
    if port.strip() and not port.strip().isdigit():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"port: not a number: {port!r}")
    with create_session() as session:
        session.add(Connection(conn_id=conn_id, conn_type=conn_type.strip() or None, host=host.strip() or None,
                               port=int(port) if port.strip() else None, login=login.strip() or None,
                               password=password or None, extra=json.dumps(extra_json)))
    shown = f"created connection {conn_id} ({conn_type or 'no type'}, host {host.strip() or '-'})"
    _audit_new(name, user, "connection", shown)
    return RedirectResponse(f"{back}&said={quote(shown + '; its secret is kept by Airflow only')}",
                            status.HTTP_303_SEE_OTHER)


def _audit_new(name: str, user, action: str, summary: str, ok: bool = True, target: str | None = None,
               **extra: Any) -> None:
    """A new source's actions, to its users database (the default one before its rules say another)."""
    record_action(target or TargetSpec().conn_id, name, user, action, summary, ok, **extra)


def _new_rules(posted: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The wizard's rules as posted: (data, problems located as ``usersync rules validate`` names them)."""
    source_type, name, conn = posted.get("_type", ""), posted.get("_name", ""), posted.get("_conn", "")
    if source_type not in SOURCE_TYPES:
        return {}, [("source.type", f"unknown source type {source_type!r}")]
    base = new_rules(source_type, name, None if source_type == "csv" else conn)
    form = rules_form(base)
    problems: list[tuple[str, str]] = []
    if problem := name_problem(name):
        problems.append(("source.name", problem))
    try:
        data = settings(base, form_values(form, posted, only=SHOWN))
    except FormProblem as exc:
        return base, [*problems, (exc.path, exc.reason)]
    try:
        parse_rules(data, f"{name}.yaml")
    except RulesError as exc:
        problems += exc.problems
    return data, problems


@router.post("/new/check")
async def wizard_check(user: User, request: Request) -> JSONResponse:
    _creator(user)
    data, problems = _new_rules(await posted_form(request))
    return JSONResponse({"problems": problems, "diff": new_text(data) if data else "", "yaml": ""})


@router.post("/new/test")
async def wizard_test(user: User, request: Request) -> JSONResponse:
    """*Test*: the bind and the rules' real search (count, sample entries as mapped, what the mapping skips)."""
    posted = await posted_form(request)
    _creator(user, request, posted.get("token", ""))
    data, problems = _new_rules(posted)
    if problems:
        return JSONResponse({"ok": False, "lines": problem_lines(problems)})
    ok, lines = search_lines(parse_rules(data))
    _audit_new(data["source"]["name"], user, "test", lines[0] if lines else "", ok,
               target=(data.get("target") or {}).get("conn_id"))
    return JSONResponse({"ok": ok, "lines": lines})


@router.post("/new/create")
async def wizard_create(user: User, request: Request) -> Response:
    """Write the new rules file (manual runs only until the schedule is enabled); where the folder cannot be
    written, the file is offered to download instead."""
    posted = await posted_form(request)
    _creator(user, request, posted.get("token", ""))
    data, problems = _new_rules(posted)
    if problems:
        lines = "; ".join(problem_lines(problems))
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"not created, the rules are invalid: {lines}")
    name, text = data["source"]["name"], new_text(data)
    if not writable():
        return Response(text, media_type="application/yaml; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.yaml"'})
    path = rules_dir() / f"{name}.yaml"
    write_atomically(path, text)
    _audit_new(name, user, "created", f"created {path.name} ({data['source']['type']})",
               target=(data.get("target") or {}).get("conn_id"), after_text=text)
    said = f"{path.name} written: Airflow reads it and shows the DAG without a restart"
    return RedirectResponse(f"../new?type={quote(data['source']['type'])}&name={quote(name)}&step=run"
                            f"&said={quote(said)}", status.HTTP_303_SEE_OTHER)


@router.post("/new/schedule")
def wizard_schedule(user: User, request: Request, token: Annotated[str, Form(max_length=128)],
                    name: Annotated[str, Form(max_length=64)], hour: Annotated[int, Form(ge=0, le=23)],
                    minute: Annotated[int, Form(ge=0, le=59)],
                    timezone: Annotated[str, Form(max_length=64)] = "UTC") -> RedirectResponse:
    """*Enable the schedule*: auto mode at the hour given, written into the rules file; the DAG unpaused."""
    if not genuine(request, token, wizard_token(user)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this form did not come from the wizard; nothing was done")
    found = live_rules().get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {name!r} in the rules folder")
    rules, path, dag = found
    if not may_edit(user, dag):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to edit this DAG")
    before = rules.model_dump(mode="json")
    try:
        after = parse_rules({**before, "schedule": {**before["schedule"], "auto": True, "hour": hour,
                                                     "minute": minute, "timezone": timezone}}, path)
    except RulesError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    old = path.read_text(encoding="utf-8")
    new = edited_text(old, before, after.model_dump(mode="json"), inputs_of(rules_form(before)))
    if not writable():
        raise HTTPException(status.HTTP_409_CONFLICT, "the rules folder cannot be written here")
    write_atomically(path, new)
    unpause(dag)
    summary = f"schedule enabled: daily {hour:02d}:{minute:02d} {timezone}"
    audit(rules, user, "schedule", summary, before_text=old, after_text=new)
    return RedirectResponse(f"../sources?said={quote(f'{name}: {summary}')}", status.HTTP_303_SEE_OTHER)

