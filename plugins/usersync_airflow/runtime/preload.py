"""What every sync task would import at its start, imported once by a long-lived parent process instead, so each
task process — a fork of that parent — starts with it already loaded.

Under the LocalExecutor the parent is the scheduler's forkserver (``[scheduler] mp_start_method = forkserver``,
``[scheduler] mp_forkserver_preload = usersync_airflow.runtime.preload``); under Celery, each worker
(``[celery] celery_config_options = usersync_airflow.runtime.celery_config.CELERY_CONFIG``). A task that loads these
itself pays the Task SDK's DAG-file parse, Airflow's plugins and pandas' import before it does any work; a
preloaded one starts at once (figures: docs/benchmarks.md, "Where a task's start goes").

Never fails its parent: a module that cannot be imported here is imported by the task as before.
"""

from __future__ import annotations

import gc
import importlib
import logging

log = logging.getLogger(__name__)

MODULES = (
    # the Task SDK's start in each task process: the runner, the DAG-file parse, Airflow's plugins
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.serialization.serialized_objects",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.operators.hitl",
    # the run's libraries and steps
    "pyarrow.parquet",
    "pandas",
    "psycopg",
    "usersync_airflow.dag.dag_factory",
    "usersync_airflow.dag.tasks",
    "usersync_airflow.dag.reporting",
    "usersync.plan.diff",
    "usersync.store.apply",
)


def preload() -> list[str]:
    """Import ``MODULES``, every registered source reader and Airflow's plugins; the names that failed."""
    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the task imports it itself, and fails there with its own message
            failed.append(name)
            log.warning("usersync preload: %s not preloaded (%s: %s)", name, type(exc).__name__, exc)
    try:
        from airflow import plugins_manager

        from usersync.sources.registry import SOURCE_TYPES

        for source_type in {t.reader: t for t in SOURCE_TYPES.values()}.values():
            source_type.reader_class()
        plugins_manager.ensure_plugins_loaded()
    except Exception as exc:  # noqa: BLE001 - as above
        failed.append("readers/plugins")
        log.warning("usersync preload: readers or plugins not preloaded (%s: %s)", type(exc).__name__, exc)
    gc.freeze()  # what the forks inherit stays shared: the collector will not touch (and copy) these pages
    return failed


preload()
