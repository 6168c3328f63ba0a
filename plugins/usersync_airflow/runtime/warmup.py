"""When the scheduler starts, pay the one-off costs a first run would otherwise pay inside its first task.

Two were found (figures: docs/benchmarks.md): the API server builds its execution API (the one task processes
report to) on the first request it gets, and the LocalExecutor's forkserver starts, with
``usersync_airflow.runtime.preload``, when the first task is queued. Registered as a plugin listener
(``UsersyncPlugin.listeners``), this starts both in a background thread of the scheduler, so the scheduler's own
start is not delayed and a run triggered early still works (it only waits for what is still warming up).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
#: how long the scheduler's warm-up waits for the API server to answer (it may start after the scheduler)
API_WAIT_SECONDS = 300


@hookimpl
def on_starting(component: Any) -> None:
    """Airflow calls this as each of its jobs (scheduler, triggerer, DAG processor) and each task starts."""
    if type(component).__name__ != "Job":
        return  # a task process
    threading.Thread(target=_warm_if_scheduler, args=(component,), name="usersync-warmup", daemon=True).start()


def _warm_if_scheduler(job: Any, settle_seconds: float = 10) -> None:
    deadline = time.monotonic() + settle_seconds
    while getattr(job, "job_type", None) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the job learns its type from its runner right after the listener is called
    if getattr(job, "job_type", None) != "SchedulerJob":
        return
    if multiprocessing.get_start_method(allow_none=True) == "forkserver":
        from multiprocessing import forkserver

        from airflow.configuration import conf

        forkserver.ensure_running()  # it imports [scheduler] mp_forkserver_preload now, not when a task is queued
        preload = conf.get("scheduler", "mp_forkserver_preload", fallback=None) or conf.get(
            "core", "mp_forkserver_preload", fallback=None)
        log.info("usersync warm-up: forkserver started (it imports %s while the scheduler starts)", preload or "nothing")
    warm_execution_api()


def warm_execution_api(timeout: float = API_WAIT_SECONDS) -> bool:
    """One request to the execution API's health endpoint, as soon as the API server answers."""
    import httpx
    from airflow.executors.base_executor import get_execution_api_server_url

    url = get_execution_api_server_url().rstrip("/") + "/health"
    deadline, started = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=60)
        except httpx.HTTPError:
            time.sleep(1)  # the API server is not up yet
            continue
        log.info("usersync warm-up: execution API at %s ready in %.1f s", url, time.monotonic() - started)
        return True
    log.warning("usersync warm-up: no answer from %s in %.0f s; the first task will warm it", url, timeout)
    return False
