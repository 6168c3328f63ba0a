"""Runs sync DAGs with ``dag.test()`` on request, in its own process with its own Airflow home.

Driven by ``bench.bench_dag`` (and the benchmark smoke test) over stdin/stdout, one JSON object per line:
``{"run": "<dag id>", "conf": {...}, "run_after": "<ISO time, optional>"}`` → ``{"dag_id", "state", "seconds", "tasks": {task: seconds},
"written", "xcom_bytes", "entries", "run_bytes", "peak_rss_mb", "explanation", "write_back"}`` (a single-account run's
explanation; what write-back did, for rules with a ``write_back`` section). The environment (AIRFLOW_HOME, connections, rules
folder) is set by the caller before this process starts, as an admin's shell would.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path


def admin_env(home, rules_dir, connections: dict[str, dict]) -> dict[str, str]:
    """What an admin's shell holds for this runner: Airflow home, rules folder, connections (by conn id)."""
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "USERSYNC"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", "USERSYNC_HOME": str(home / "usersync"),
        "USERSYNC_RULES_DIR": str(rules_dir), "PYTHONPATH": str(repo),
    })
    env.update({f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields) for conn_id, fields in connections.items()})
    return env


def xcom_bytes(run_id: str) -> int:
    """Bytes of XCom this run stored in the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.value).where(XComModel.run_id == run_id)).all()
    return sum(len(json.dumps(v) if not isinstance(v, (str, bytes)) else v) for (v,) in rows)


def entries_read(run_id: str) -> int:
    """Directory entries the run's extract tasks read: records, plus anchors scanned on a delta read."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.value).where(
            XComModel.run_id == run_id, XComModel.task_id == "extract", XComModel.key == "return_value")).all()
    values = [json.loads(v) if isinstance(v, (str, bytes)) else v for (v,) in rows]
    return sum(v["records"]["rows"] + v.get("scanned", 0) for v in values)


def run(dag_id: str, conf: dict, run_after: str | None = None) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    from usersync_airflow.dag.run_storage import run_folder

    dag = DagBag(dag_folder=sys.argv[1]).get_dag(dag_id)
    t = time.perf_counter()
    if run_after:  # the run's time, ISO 8601 (a daily run's due time: grace periods count from it)
        from datetime import datetime

        when = datetime.fromisoformat(run_after)
        dr = dag.test(run_conf=conf, run_after=when, logical_date=when)
    else:
        dr = dag.test(run_conf=conf)
    seconds = time.perf_counter() - t
    tasks: dict[str, float] = {}
    for ti in dr.get_task_instances():
        tasks[ti.task_id] = round(tasks.get(ti.task_id, 0.0) + (ti.duration or 0.0), 2)
    applied = dr.get_task_instance("apply").xcom_pull(task_ids="apply") or {}
    wrote_back = dr.get_task_instance("write_back")  # None: the rules have no write_back section
    folder = run_folder(dag_id, dr.run_id)
    explained = folder.path / "explanation.txt"
    return {
        "dag_id": dag_id, "run_id": dr.run_id, "state": str(dr.state), "seconds": round(seconds, 2), "tasks": tasks,
        "written": applied.get("written"), "xcom_bytes": xcom_bytes(dr.run_id), "entries": entries_read(dr.run_id),
        "run_bytes": folder.size() if folder.path.exists() else 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "explanation": explained.read_text() if explained.exists() else None,
        "write_back": wrote_back.xcom_pull(task_ids="write_back") if wrote_back is not None else None,
    }


def main() -> None:
    warnings.simplefilter("ignore")
    answers = os.fdopen(os.dup(1), "w")  # results go here; everything Airflow prints goes to stderr
    os.dup2(2, 1)
    from airflow.utils import db

    db.resetdb()
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        with _without_user_log() if request.get("user_log") is False else contextlib.nullcontext():
            result = run(request["run"], request.get("conf") or {}, request.get("run_after"))
        print(json.dumps(result), file=answers, flush=True)


def _without_user_log():
    """The benchmark's reference for the per-user log's cost: the same run with the log's writes left out."""
    from unittest import mock

    from usersync.store.user_log import UserLog

    patches = contextlib.ExitStack()
    patches.enter_context(mock.patch.object(UserLog, "write", lambda self, last=False: 0))
    patches.enter_context(mock.patch.object(UserLog, "inserted", lambda self, since: 0))
    return patches


if __name__ == "__main__":
    main()
