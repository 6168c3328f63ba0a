"""The reports page as a FastAPI app mounted in Airflow's API server (``/usersync/…``, see ``ui_plugin``).

Airflow does not protect plugin endpoints: every route here resolves the caller from Airflow's own JWT (the
UI's ``_token`` cookie, or ``Authorization: Bearer`` for scripts) through the configured auth manager, and shows
a source's runs only to a user allowed to read that DAG's runs. An unauthenticated request gets 401 and nothing
else. Data comes from the run folders on shared storage (``USERSYNC_RUN_DATA``), never from a worker's disk.
"""

from __future__ import annotations

import posixpath
import re
from itertools import chain
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from usersync.run.summaries import EXPLANATION, REPORT, read_summary, recent_runs, report_text
from usersync_airflow.dag.run_storage import runs_base
from usersync_airflow.ui.reports_page import page

DEFAULT_DAYS = 15
#: run_storage's folder names, never ``.``, ``..`` or hidden: anything else never reaches storage
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


async def current_user(request: Request):
    """The Airflow user behind this request, or 401/403 (Airflow's own token check, as its REST API does).

    Not ``Depends(airflow…security.get_user)``: importing that module here would slow the start of every
    process that loads plugins; the same token resolution is imported only when a request comes."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


User = Annotated[object, Depends(current_user)]


def may_read(user, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=dag_id), user=user)


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
def reports(user: User, days: Days = DEFAULT_DAYS) -> HTMLResponse:
    return HTMLResponse(page(_history(user, days), days))


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


