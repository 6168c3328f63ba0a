"""Surfaces malformed usersync rules files as an Airflow DAG import error (this file defines no dag).

``user_sync.py`` loads every valid rules file; this file fails to import when any rules file is invalid, so
the Airflow UI's "DAG Import Errors" names the file, the field and the reason while the valid sources run.
"""

from usersync.rules import load_rules_dir
from usersync_airflow.dag.dag_factory import rules_dir

_valid, _errors = load_rules_dir(rules_dir())
if _errors:
    raise ValueError("\n".join(str(err) for err in _errors.values()))
