"""The name airflow.cfg files of earlier releases give ``[scheduler] mp_forkserver_preload``: the preloading now
lives in ``usersync_airflow.runtime.preload``; importing this module runs it, so such a configuration keeps
working."""

import usersync_airflow.runtime.preload  # noqa: F401 - imported for what importing it does
