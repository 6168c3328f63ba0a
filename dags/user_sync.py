"""Airflow DAGs for usersync: one DAG ``user_sync__<source>`` per rules file in include/rules/.

Parsing reads only the shipped rules files (no network, no database); a task builds only its own DAG. A malformed rules file does not stop
the others from loading; it is reported by ``user_sync_rules_errors.py`` as a DAG import error.
"""

from airflow.sdk import get_parsing_context

from usersync_airflow.dag.dag_factory import build_dags

# a task process parses this file for its own DAG only (the DAG processor, for all of them)
_dags, _errors = build_dags(only=get_parsing_context().dag_id)
globals().update(_dags)
