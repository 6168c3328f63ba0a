"""Where usersync keeps its files on the Airflow machine: ``$USERSYNC_HOME`` (default ``$AIRFLOW_HOME/usersync``)
holds the embedded users database, the run reports and the CSV imports folder, each overridable."""

from __future__ import annotations

import os
from pathlib import Path


def usersync_home() -> Path:
    if os.environ.get("USERSYNC_HOME"):
        return Path(os.environ["USERSYNC_HOME"])
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "usersync"


def configured(explicit: str | None, env: str, default: str) -> Path:
    """The folder a rules file names, else the environment variable ``env``, else ``$USERSYNC_HOME/default``."""
    return Path(explicit or os.environ.get(env) or usersync_home() / default)
