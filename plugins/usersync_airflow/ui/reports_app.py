"""The reports page as a FastAPI app mounted in Airflow's API server (``/usersync/…``, see ``ui_plugin``).

Airflow does not protect plugin endpoints: every route here resolves the caller from Airflow's own JWT (the
UI's ``_token`` cookie, or ``Authorization: Bearer`` for scripts) through the configured auth manager, and shows
a source's runs only to a user allowed to read that DAG's runs. An unauthenticated request gets 401 and nothing
else. Data comes from the run folders on shared storage (``USERSYNC_RUN_DATA``), never from a worker's disk.
"""

from __future__ import annotations

import logging
import posixpath
import re
from itertools import chain
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse

from usersync.run.summaries import EXPLANATION, REPORT, read_summary, recent_runs, report_text
from usersync_airflow.dag.run_storage import runs_base
from usersync_airflow.ui.access import (
    User,
    form_token,
    genuine,
    may_read,
    may_trigger,
    readable_sources,
    user_name,
)
from usersync_airflow.ui.airflow_dags import trigger
from usersync_airflow.ui.reports_page import page, run_link, undo_form

log = logging.getLogger(__name__)

DEFAULT_DAYS = 15
#: run_storage's folder names, never ``.``, ``..`` or hidden: anything else never reaches storage
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def _history(user, days: int) -> dict:
    return {dag_id: runs for dag_id, runs in recent_runs(runs_base(), days).items() if may_read(user, dag_id)}


def _run_dir(user, dag_id: str, folder: str):
    if not (_NAME.match(dag_id) and _NAME.match(folder)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such run")
    if not may_read(user, dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to read this DAG's runs")
    base = runs_base()
    run_dir = base / dag_id / folder
    if not posixpath.normpath(str(run_dir)).startswith(posixpath.normpath(str(base)) + "/"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such run")
    return run_dir


Days = Annotated[int, Query(ge=1, le=366)]

# no docs, ReDoc or OpenAPI schema routes: FastAPI serves those without a login
app = FastAPI(title="usersync reports", description="Runs of each user sync DAG: counts, reports, change sets.",
              docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/reports", response_class=HTMLResponse)
def reports(user: User, days: Days = DEFAULT_DAYS, triggered: Annotated[str, Query(max_length=250)] = "",
            said: Annotated[str, Query(max_length=500)] = "") -> HTMLResponse:
    history = _history(user, days)
    allowed = {dag_id for dag_id in history if may_trigger(user, dag_id)}

    def token(dag_id: str, run_id: str) -> str | None:
        return undo_token(user, dag_id, run_id) if dag_id in allowed else None

    health = _health(user)
    for dag_id in health:  # a quarantined source shows even when none of its runs is in the window
        history.setdefault(dag_id, [])
    releases = {dag_id: release_token(user, row["source"]) for dag_id, row in health.items()
                if may_trigger(user, dag_id)}
    return HTMLResponse(page(history, days, undo_token=token, triggered=triggered, health=health,
                             release_tokens=releases, said=said))


def _health(user) -> dict[str, dict]:
    """Each readable source's health row (``source_health``), by DAG id (one query per users database)."""
    from usersync.store.source_health import load_all
    from usersync_airflow.hooks import UsersDbHook

    sources, out = readable_sources(user), {}
    for conn_id in sorted({conn for _dag, conn in sources.values()}):
        hook = UsersDbHook(conn_id)
        try:
            rows = load_all(hook.get_conn())
        except Exception as exc:  # noqa: BLE001 - the page shows the runs all the same
            log.error("could not read the sources' health from %s: %s", conn_id, exc)
            rows = {}
        finally:
            hook.close()
        out.update({dag: rows[s] for s, (dag, c) in sources.items() if c == conn_id and s in rows})
    return out


def _form_source(user, request: Request, source: str, token: str, expected: str, refused: str) -> tuple[str, str]:
    """A write from one of the app's pages: same-site, carrying the page's token for this user and source, by
    someone who may trigger the source's DAG (403 otherwise, ``refused`` saying from where and what was not
    done). Returns the source's DAG id and users database connection id."""
    if not genuine(request, token, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this form did not come from {refused}")
    sources = readable_sources(user)
    if source not in sources or not may_trigger(user, sources[source][0]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to trigger this DAG")
    return sources[source]


def release_token(user, source: str) -> str:
    """The token a release form carries: bound to this user and source (see ``undo_token``)."""
    return undo_token(user, source, "release")


@app.post("/release")
def release(user: User, request: Request, source: Annotated[str, Form(max_length=64)],
            token: Annotated[str, Form(max_length=128)]) -> RedirectResponse:
    """End a source's quarantine (who may trigger its DAG may): its next scheduled run tries the source again."""
    from datetime import UTC, datetime

    from usersync.store.source_health import release as end_quarantine
    from usersync_airflow.hooks import UsersDbHook

    _dag_id, conn_id = _form_source(user, request, source, token, release_token(user, source),
                                    "the reports page; nothing was released")
    hook = UsersDbHook(conn_id)
    try:
        done = end_quarantine(hook.get_conn(), source, user_name(user), datetime.now(UTC))
    finally:
        hook.close()
    said = f"{source} released from quarantine: its next scheduled run tries the source" if done else \
        f"{source} was not in quarantine: nothing to release"
    log.info("%s (by %s)", said, user_name(user))
    return RedirectResponse(f"reports?said={quote(said, safe='')}", status.HTTP_303_SEE_OTHER)


@app.get("/api/runs")
def runs(user: User, days: Days = DEFAULT_DAYS) -> JSONResponse:
    """The same as JSON: ``{dag id: [summary, …]}``, oldest run first."""
    return JSONResponse(_history(user, days))


@app.get("/runs/{dag_id}/{folder}/report.txt")
def report(user: User, dag_id: str, folder: str, download: bool = False) -> StreamingResponse:
    return _text(_run_dir(user, dag_id, folder), REPORT, f"{dag_id}_{folder}.txt", download, "a report")


@app.get("/runs/{dag_id}/{folder}/explanation.txt")
def explanation(user: User, dag_id: str, folder: str) -> StreamingResponse:
    """A single-account run's explanation of that account, step by step."""
    return _text(_run_dir(user, dag_id, folder), EXPLANATION, f"{dag_id}_{folder}_explanation.txt", False,
                 "an account's explanation")


def _text(run_dir, name: str, filename: str, download: bool, what: str) -> StreamingResponse:
    try:
        chunks = report_text(run_dir, name)
        first = next(chunks, "")
    except FileNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"this run has no {what.split(' ', 1)[1]} (yet)") from None
    disposition = "attachment" if download else "inline"
    return StreamingResponse(chain([first], chunks), media_type="text/plain; charset=utf-8",
                             headers={"Content-Disposition": f'{disposition}; filename="{filename}"'})


def _timeline(user, query: str) -> tuple[list, dict[str, tuple[str, str]]]:
    """The events of ``query``'s timeline in the sources ``user`` may read (one query per users database)."""
    from usersync.store.history import timeline
    from usersync_airflow.hooks import UsersDbHook

    sources = readable_sources(user)
    events: list = []
    for conn_id in sorted({conn for _dag, conn in sources.values()}):
        hook = UsersDbHook(conn_id)
        try:
            events += timeline(hook.get_conn(), query, [s for s, (_d, c) in sources.items() if c == conn_id])
        finally:
            hook.close()
    return sorted(events, key=lambda e: (e.at, e.id)), sources


Search = Annotated[str, Query(max_length=256)]


@app.get("/history", response_class=HTMLResponse)
def history(user: User, q: Search = "") -> HTMLResponse:
    """One user's timeline across sources (username, AD username, DOMAIN\\user, anchor, e-mail or number)."""
    from usersync.core.run_folder import folder_name
    from usersync_airflow.ui.history_page import history_page

    events, sources = _timeline(user, q) if q.strip() else ([], {})

    def report_link(event) -> str | None:
        dag = sources.get(event.source or "", (None, None))[0]
        return run_link(dag, folder_name(event.run_id), "report.txt") if dag else None

    allowed = {dag for dag, _conn in sources.values() if may_trigger(user, dag)}

    def undo(event) -> str | None:
        dag = sources.get(event.source or "", (None, None))[0]
        return undo_form(dag, event.run_id, undo_token(user, dag, event.run_id)) if dag in allowed else None

    return HTMLResponse(history_page(q, events, report_link, undo=undo))


@app.get("/api/history")
def history_json(user: User, q: Search = "") -> JSONResponse:
    """The same timeline as JSON: ``{"query": q, "events": [event, …]}``, oldest first."""
    events, _sources = _timeline(user, q) if q.strip() else ([], {})
    return JSONResponse({"query": q, "events": [e.to_json() for e in events]})


@app.get("/history.csv")
def history_csv(user: User, q: Search = "") -> StreamingResponse:
    from usersync_airflow.ui.history_page import history_csv as rows

    events, _sources = _timeline(user, q) if q.strip() else ([], {})
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", q.strip())[:64] or "history"
    return StreamingResponse(rows(events), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="history_{name}.csv"'})


@app.post("/undo")
def undo(user: User, request: Request, dag_id: Annotated[str, Form(max_length=250)],
         run_id: Annotated[str, Form(max_length=250)], token: Annotated[str, Form(max_length=128)],
         dry_run: Annotated[bool, Form()] = False) -> RedirectResponse:
    """Trigger the undo of a finished run (a new run of the same DAG with ``undo_run``). The form carries a token
    bound to this user, DAG and run, and the request must come from this site: cross-site forgery is refused.
    The undo reads the per-user log, so a run whose folder was pruned can still be undone."""
    if not genuine(request, token, undo_token(user, dag_id, run_id)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this form did not come from the reports page; nothing was "
                                                       "triggered")
    if not (_NAME.match(dag_id) and may_read(user, dag_id) and may_trigger(user, dag_id)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to trigger this DAG")
    new = trigger(dag_id, user, {"undo_run": run_id, "dry_run": bool(dry_run)})
    return RedirectResponse(f"reports?triggered={quote(new, safe='')}", status.HTTP_303_SEE_OTHER)


def undo_token(user, dag_id: str, run_id: str) -> str:
    """The undo form's token: bound to this user, DAG and run (``access.form_token``)."""
    return form_token(user, dag_id, run_id)


@app.get("/runs/{dag_id}/{folder}/changes.csv")
def changes(user: User, dag_id: str, folder: str) -> StreamingResponse:
    from usersync.core.run_folder import RunDataError, RunFolder
    from usersync.run.export import change_set_csv

    run_dir = _run_dir(user, dag_id, folder)
    summary = read_summary(run_dir)
    if not summary or not summary.get("plan"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this run has no change set")
    rows = change_set_csv(RunFolder(run_dir), summary["plan"])
    try:
        first = next(rows)  # the first file is read and checked before the answer starts
    except RunDataError as exc:  # pruned or damaged run data: say which file
        raise HTTPException(status.HTTP_410_GONE, str(exc)) from None
    return StreamingResponse(chain([first], rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{dag_id}_{folder}_changes.csv"'})




# --- cases ---------------------------------------------------------------------------------------------------

Status = Annotated[str, Query(pattern="^(live|open|decided|kept|rejected|closed|all)$")]
Kind = Annotated[str, Query(pattern="^(|number|match)$")]
Name = Annotated[str, Query(max_length=64)]


def _case_sources(user, source: str = "") -> dict[str, tuple[str, str]]:
    """The sources whose cases ``user`` may read (``source``: only that one): source → (DAG id, users db conn)."""
    sources = readable_sources(user)
    return {s: v for s, v in sources.items() if not source or s == source}


def _cases_of(sources: dict[str, tuple[str, str]], status: str, kind: str, q: str, page: int) -> tuple[list, int]:
    """One page of cases of ``sources`` (one query per users database), newest first."""
    from usersync.store.cases import list_cases
    from usersync_airflow.hooks import UsersDbHook
    from usersync_airflow.ui.cases_page import PAGE

    found, total = [], 0
    for conn_id in sorted({conn for _dag, conn in sources.values()}):
        hook = UsersDbHook(conn_id)
        try:
            rows, n = list_cases(hook.get_conn(), [s for s, (_d, c) in sources.items() if c == conn_id], status,
                                 kind or None, q, limit=PAGE, offset=page * PAGE)
        finally:
            hook.close()
        found += rows
        total += n
    return found, total


def cases_token(user, source: str) -> str:
    """The token a cases form carries: bound to this user and source (see ``undo_token``)."""
    return undo_token(user, source, "cases")


@app.get("/cases", response_class=HTMLResponse)
def cases_view(user: User, source: Name = "", status: Status = "live", kind: Kind = "", q: Search = "",
               page: Annotated[int, Query(ge=0, le=10_000)] = 0,
               done: Annotated[str, Query(max_length=500)] = "") -> HTMLResponse:
    """Live cases of the sources the viewer may read; decision forms for those whose DAG they may trigger."""
    from usersync_airflow.ui.cases_page import Filters, cases_page

    sources = _case_sources(user, source)
    cases, total = _cases_of(sources, status, kind, q, page)
    tokens = {s: cases_token(user, s) for s, (dag, _c) in sources.items() if may_trigger(user, dag)}
    return HTMLResponse(cases_page(cases, total, Filters(source, status, kind, q, page), sorted(readable_sources(user)),
                                   tokens, done))


@app.get("/api/cases")
def cases_json(user: User, source: Name = "", status: Status = "live", kind: Kind = "", q: Search = "",
               page: Annotated[int, Query(ge=0, le=10_000)] = 0) -> JSONResponse:
    """``{"cases": [case, …], "total": n}``: the same cases as the page, as JSON."""
    cases, total = _cases_of(_case_sources(user, source), status, kind, q, page)
    return JSONResponse({"cases": cases, "total": total})


def _decide(user, source: str, ids: list[int], decision: str, user_id: int | None) -> dict[int, str]:
    from usersync.store.cases import decide
    from usersync_airflow.hooks import UsersDbHook

    if decision not in ("confirm", "reject", "give", "keep"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"unknown decision {decision!r}")
    sources = _case_sources(user, source)
    if source not in sources or not may_trigger(user, sources[source][0]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to decide this source's cases (deciding needs the "
                                                       "right to trigger its DAG)")
    if not ids:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "no case chosen")
    hook = UsersDbHook(sources[source][1])
    try:
        return decide(hook.get_conn(), ids, decision, by=user_name(user), sources=[source], user_id=user_id)
    finally:
        hook.close()


def _said(results: dict[int, str]) -> str:
    ok = sum(1 for r in results.values() if r == "ok")
    refused = [f"#{i}: {r}" for i, r in results.items() if r != "ok"]
    return f"{ok} case(s) decided; the next run applies them" + (f"; refused: {'; '.join(refused[:20])}" if refused else "")


@app.post("/cases/decide")
def cases_decide(user: User, request: Request, source: Annotated[str, Form(max_length=64)],
                 decision: Annotated[str, Form(max_length=16)], token: Annotated[str, Form(max_length=128)],
                 ids: Annotated[list[int], Form(default_factory=list)],
                 user_id: Annotated[int | None, Form()] = None) -> RedirectResponse:
    """A decision from the page (one case or the checked ones): same-site, with the page's token. The bulk form
    sent with no case ticked comes back to the page with a line saying so."""
    if not genuine(request, token, cases_token(user, source)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this form did not come from the cases page; nothing was decided")
    said = _said(_decide(user, source, ids, decision, user_id)) if ids else \
        "no case ticked: tick the cases to decide, then choose the decision; nothing was decided"
    return RedirectResponse(f"../cases?source={quote(source, safe='')}&done={quote(said[:480], safe='')}",
                            status.HTTP_303_SEE_OTHER)


@app.post("/api/cases/decide")
async def cases_decide_json(user: User, request: Request) -> JSONResponse:
    """``{"source", "ids": [...], "decision", "user_id"?}`` → ``{"results": {id: "ok" | why not}}``. Scripts send
    the token as ``Authorization: Bearer``; a browser's cookie alone is refused (cross-site forgery)."""
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the API takes the token as Authorization: Bearer")
    try:
        body = await request.json()
        source, decision = str(body["source"]), str(body["decision"])
        ids = [int(i) for i in body["ids"]]
        user_id = int(body["user_id"]) if body.get("user_id") is not None else None
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"expected {{source, ids, decision, user_id?}}: {type(exc).__name__} {exc}") from None
    return JSONResponse({"results": {str(k): v for k, v in _decide(user, source, ids, decision, user_id).items()}})


@app.post("/cases/run")
def cases_run(user: User, request: Request, source: Annotated[str, Form(max_length=64)],
              token: Annotated[str, Form(max_length=128)]) -> RedirectResponse:
    """Run the source now, so the decisions taken are applied (same checks as a decision)."""
    dag_id, _conn_id = _form_source(user, request, source, token, cases_token(user, source),
                                    "the cases page; nothing was triggered")
    return RedirectResponse(f"../reports?triggered={quote(trigger(dag_id, user, {}), safe='')}",
                            status.HTTP_303_SEE_OTHER)


# --- the console: sources, rules editor, new-source wizard ----------------------------------------------------

def _console() -> None:
    from usersync_airflow.ui import console_app, wizard_app

    app.include_router(console_app.router)
    app.include_router(wizard_app.router)


_console()
