"""Where the rules files are: what the DAG factory, the connection Test buttons and the pages read."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository's ``include/rules`` (this file is ``plugins/usersync_airflow/rules_location.py``)
DEFAULT_RULES_DIR = Path(__file__).resolve().parents[2] / "include" / "rules"


def rules_dir() -> Path:
    """``$USERSYNC_RULES_DIR``, else the repository's ``include/rules``."""
    return Path(os.environ.get("USERSYNC_RULES_DIR") or DEFAULT_RULES_DIR)
