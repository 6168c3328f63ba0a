"""Airflow DAGs for usersync: one DAG ``user_sync__<source>`` per rules file in include/rules/.

Parsing reads only the shipped rules files (no network, no database). A malformed rules file does not stop
the others from loading; it is reported by ``user_sync_rules_errors.py`` as a DAG import error.
"""

from usersync_airflow.dag_factory import build_dags

_dags, _errors = build_dags()
globals().update(_dags)
