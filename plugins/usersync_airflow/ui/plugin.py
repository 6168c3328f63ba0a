"""Registers the console (sources, rules editor, new-source wizard) and the reports pages with Airflow (entry
point ``airflow.plugins`` in pyproject.toml, so it loads from the installed package, not from the plugins folder):
the FastAPI app under ``/usersync`` and *Browse → User sync sources* / *User sync reports* entries in the UI's
navigation that show the pages inside the UI; and the scheduler's warm-up (``warmup``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from usersync_airflow.runtime import warmup
from usersync_airflow.ui.reports_app import app


class UsersyncPlugin(AirflowPlugin):
    name = "usersync"
    listeners = [warmup]  # at scheduler start: the one-off costs a first run would pay
    fastapi_apps = [{"app": app, "url_prefix": "/usersync", "name": "usersync reports"}]
    external_views = [{
        "name": "User sync sources",
        "href": "usersync/sources",
        "url_route": "usersync-sources",
        "destination": "nav",
        "category": "browse",
    }, {
        "name": "User sync reports",
        "href": "usersync/reports",
        "url_route": "usersync-reports",
        "destination": "nav",
        "category": "browse",
    }]
