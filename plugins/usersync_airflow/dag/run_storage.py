"""Where a run's data lives: ``<base>/<dag id>/<run id>/``, addressed with Airflow's ``ObjectStoragePath``.

``USERSYNC_RUN_DATA`` is the base: a URL such as ``s3://aws_default@usersync-runs/prod`` (the Airflow
connection before ``@``) or ``file:///shared/usersync/runs``. Unset, it is the local folder
``$USERSYNC_HOME/runs`` — right for one machine; with Celery workers on several machines it must be storage
they all reach.
"""

from __future__ import annotations

import os
import re

from airflow.sdk import ObjectStoragePath

from usersync.core.paths import usersync_home
from usersync.core.run_folder import RunFolder, folder_name

ENV = "USERSYNC_RUN_DATA"


def runs_base() -> ObjectStoragePath:
    configured = os.environ.get(ENV, "").strip()
    return ObjectStoragePath(configured or (usersync_home() / "runs").resolve().as_uri())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def dag_folder(dag_id: str) -> ObjectStoragePath:
    return runs_base() / _safe(dag_id)


def run_folder(dag_id: str, run_id: str) -> RunFolder:
    return RunFolder(dag_folder(dag_id) / folder_name(run_id))
