"""Links into the Airflow UI and the reports page, for mails and approval requests."""

from __future__ import annotations

from usersync_airflow.dag.run_storage import run_folder
from usersync_airflow.ui.reports_page import run_link


def ui_base_url() -> str:
    """The Airflow UI's address as configured (``[api] base_url``), for links in mails."""
    from airflow.configuration import conf  # read at call time: the setting may change between runs

    return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")


def change_set_link(dag_id: str, run_id: str) -> str:
    """Where an admin finds the whole change set: the reports page's CSV, and the run folder's Parquet files."""
    run = run_folder(dag_id, run_id)
    return (f"[change set (CSV)]({ui_base_url()}/usersync/{run_link(dag_id, run.path.name, 'changes.csv')}) "
            f"— or the Parquet files in `{run}/plan`")


def report_link(dag_id: str, run_id: str) -> str:
    """A run's report on the reports page (as text)."""
    return f"{ui_base_url()}/usersync/{run_link(dag_id, run_folder(dag_id, run_id).path.name, 'report.txt')}"


def history_link(query: str) -> str:
    """The history page's timeline of a user (the search ``query``: a username, DOMAIN\\user, an anchor …)."""
    from urllib.parse import quote

    return f"{ui_base_url()}/usersync/history?q={quote(query, safe='')}"


def cases_link(source: str) -> str:
    """The cases page, filtered to one source."""
    from urllib.parse import quote

    return f"{ui_base_url()}/usersync/cases?source={quote(source, safe='')}"
