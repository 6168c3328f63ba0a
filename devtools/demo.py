"""`make demo`: a throwaway OpenLDAP with ~1,000 AD-like users, synced twice through Airflow.

Run 1 fills the embedded SQLite users database; then a few directory entries are added, changed and deleted,
and run 2 writes exactly those changes. `python -m devtools.demo serve` instead keeps the directory up and
starts `airflow standalone` on http://127.0.0.1:8080 with the demo DAG (what `make airflow` runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / ".demo"
USERS = 1000


def _environment(ldap) -> None:
    os.environ.update({
        "AIRFLOW_HOME": str(DEMO / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "USERSYNC_HOME": str(DEMO),
        "USERSYNC_RULES_DIR": str(REPO / "include" / "rules"),
        "AIRFLOW_CONN_USERSYNC_DEMO_LDAP": json.dumps(ldap.connection_extra()),
    })


def _start_directory():
    from devtools.slapd import SlapdServer

    shutil.rmtree(DEMO / "slapd", ignore_errors=True)
    t = time.monotonic()
    ldap = SlapdServer(DEMO / "slapd", users=USERS).start()
    print(f"demo directory: {USERS} AD-like users on ldaps://127.0.0.1:{ldap.tls_port} "
          f"(started in {time.monotonic() - t:.1f} s)")
    return ldap


def _run(dag, label: str) -> None:
    t = time.monotonic()
    dr = dag.test()
    took = time.monotonic() - t
    if dr.state != "success":
        failed = [ti.task_id for ti in dr.get_task_instances() if ti.state == "failed"]
        sys.exit(f"{label}: the run failed in task(s) {failed}; see the log above")
    summary = dr.get_task_instance("report").xcom_pull(task_ids="report")
    print(f"\n=== {label} ({took:.1f} s) ===\n{summary}\n")


def main() -> None:
    warnings.simplefilter("ignore")  # library deprecation chatter would bury the summaries
    DEMO.mkdir(exist_ok=True)
    (DEMO / "users.db").unlink(missing_ok=True)
    ldap = _start_directory()
    try:
        _environment(ldap)
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.resetdb()
        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("user_sync__demo")
        _run(dag, "run 1: first import")

        ldap.add_user(USERS + 1)
        ldap.add_user(USERS + 2)
        ldap.modify_user(10, department="Board", mobile="+39 333 0000010")
        ldap.modify_user(11, givenName="Giovanni")
        ldap.modify_user(12, userAccountControl="514")  # account disabled in AD
        ldap.delete_user(20)
        print("directory changed: 2 users added, 3 modified (department+mobile, first name, disabled), 1 deleted")
        _run(dag, "run 2: after directory changes")
        print(f"users database: {DEMO / 'users.db'}  (sqlite3 {DEMO / 'users.db'} 'select * from users limit 5')")
    finally:
        ldap.stop()


def serve() -> None:
    """Keep the demo directory up and run `airflow standalone` against it until Ctrl-C."""
    from devtools.airflow_cluster import LOCAL_EXECUTOR
    from devtools.netutil import stop_groups

    DEMO.mkdir(exist_ok=True)
    ldap = _start_directory()
    _environment(ldap)
    os.environ.update({
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **LOCAL_EXECUTOR,  # a run starts in seconds: see docs/benchmarks.md
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    })
    airflow = Path(sys.executable).with_name("airflow")
    os.environ["PATH"] = f"{airflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # standalone spawns `airflow`
    proc = subprocess.Popen([str(airflow), "standalone"], start_new_session=True)
    print("Airflow UI: http://127.0.0.1:8080  (Ctrl-C stops Airflow and the demo directory)")
    try:
        proc.wait()
    except KeyboardInterrupt:
        print("\nstopping Airflow …")
    finally:
        stop_groups([proc], grace=STOP_GRACE_SECONDS)
        ldap.stop()


#: how long Airflow's processes get to finish after SIGTERM before they are killed: the demo holds nothing
#: worth a graceful shutdown (standalone alone took ~30 s to stop its children one by one)
STOP_GRACE_SECONDS = 3


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["serve"] else main()
