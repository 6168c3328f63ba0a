"""Who may do what in the usersync pages, decided by Airflow's own auth manager, and how a page's form proves it
came from this server.

Airflow does not protect plugin endpoints: every route resolves the caller from Airflow's JWT (the UI's ``_token``
cookie, or ``Authorization: Bearer`` for scripts). Reading a source needs read access to its DAG's runs;
triggering, deciding and releasing need the right to trigger it; editing its rules needs the right to edit the DAG;
creating a source needs the right to create DAG runs and connections. A form carries an HMAC of user, subject and
purpose under the API server's secret, and must come from this site (Origin / Referer): forgery is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request


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


def _may(user, dag_id: str | None, method: Literal["GET", "POST", "PUT"], runs: bool) -> bool:
    """``dag_id`` None: every DAG (a DAG that does not exist yet)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    entity = DagAccessEntity.RUN if runs else None
    details = DagDetails(id=dag_id) if dag_id is not None else None
    return get_auth_manager().is_authorized_dag(method=method, access_entity=entity, details=details, user=user)


def may_read(user, dag_id: str) -> bool:
    return _may(user, dag_id, "GET", runs=True)


def may_trigger(user, dag_id: str) -> bool:
    return _may(user, dag_id, "POST", runs=True)


def may_edit(user, dag_id: str) -> bool:
    """Edit the DAG itself (pause, its rules): what Airflow asks before a DAG is changed."""
    return _may(user, dag_id, "PUT", runs=False)


def may_create_connection(user) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_connection(method="POST", user=user)


def may_create_source(user) -> bool:
    """A new source is a new DAG on a new connection: the right to create connections and to edit and trigger
    DAGs (checked on every DAG, as the source's DAG does not exist yet)."""
    return may_create_connection(user) and _may(user, None, "PUT", runs=False) and _may(user, None, "POST", runs=True)


def form_token(user, *subject: str) -> str:
    """An HMAC of user and ``subject`` under the API server's secret key: only a page this server rendered for
    this user carries it."""
    from airflow.configuration import conf

    secret = (conf.get("api", "secret_key", fallback="") or conf.get("api_auth", "jwt_secret", fallback="")).encode()
    message = "\x1f".join((str(user.get_id()), *subject)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def same_site(request: Request) -> bool:
    """The request's Origin (or Referer) is this server: a form posted from another site is refused."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    seen = urlsplit(origin)
    return (seen.scheme, seen.netloc) == (request.url.scheme, request.url.netloc)


def genuine(request: Request, token: str, expected: str) -> bool:
    """A form from one of this server's pages, carrying the token it was given."""
    return same_site(request) and hmac.compare_digest(token, expected)


def user_name(user) -> str:
    return str(getattr(user, "get_name", lambda: None)() or user.get_id())


def readable_sources(user) -> dict[str, tuple[str, str]]:
    """The sources whose DAG runs ``user`` may read: source → (DAG id, users database connection id)."""
    from usersync_airflow.ui.rules_files import live_rules

    return {name: (dag, rules.target.conn_id) for name, (rules, _path, dag) in live_rules().items()
            if may_read(user, dag)}
