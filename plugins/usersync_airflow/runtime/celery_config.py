"""Airflow's Celery settings plus one: each Celery worker imports ``usersync_airflow.runtime.preload`` when it starts,
so its task processes (forks of the worker) start with pandas, the steps and the Task SDK already loaded.

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=usersync_airflow.runtime.celery_config.CELERY_CONFIG
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "usersync_airflow.runtime.preload"],
}
