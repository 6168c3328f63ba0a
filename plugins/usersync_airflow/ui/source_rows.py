"""What the sources page shows per source, gathered in a fixed number of queries whatever the number of sources:
one for the DAGs (paused, next run), one for their latest runs, one for the approvals waiting, and per users
database one each for health, open cases and last Tests; one summary file per source for the last run's counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from usersync.rules import Rules
from usersync.rules.loader import draft_path

log = logging.getLogger(__name__)


@dataclass
class SourceRow:
    name: str
    type: str
    conn_id: str | None
    dag_id: str
    file: str
    schedule: str
    auto: bool
    draft: bool
    paused: bool | None = None
    parsed: bool = False
    next_run: datetime | None = None
    last_run: dict[str, Any] | None = None
    approvals: int = 0
    cases: int = 0
    health: dict[str, Any] | None = None
    last_test: dict[str, Any] | None = None
    may_trigger: bool = False
    may_edit: bool = False
    notes: list[str] = field(default_factory=list)


def _schedule(rules: Rules) -> str:
    s = rules.schedule
    return f"daily {s.hour:02d}:{s.minute:02d} {s.timezone}" if s.auto else "manual runs only"


def source_rows(sources: dict[str, tuple[Rules, Path, str]], trigger: set[str], edit: set[str]) -> list[SourceRow]:
    """One row per source (``sources``: name → (rules, path, DAG id)); ``trigger`` / ``edit``: the DAG ids the
    viewer may trigger / edit."""
    rows = {name: SourceRow(name, rules.source.type, rules.source.connection_id(), dag, path.name, _schedule(rules),
                            rules.schedule.auto, draft_path(path).exists(),
                            may_trigger=dag in trigger, may_edit=dag in edit)
            for name, (rules, path, dag) in sources.items()}
    by_dag = {r.dag_id: r for r in rows.values()}
    _airflow_state(by_dag)
    _users_db_state(rows, {name: rules.target.conn_id for name, (rules, _p, _d) in sources.items()})
    _last_counts(by_dag)
    return sorted(rows.values(), key=lambda r: r.name)


def _airflow_state(by_dag: dict[str, SourceRow]) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    ids = list(by_dag)
    with create_session() as session:
        for dag_id, paused, next_after in session.execute(
                select(DagModel.dag_id, DagModel.is_paused, DagModel.next_dagrun_create_after)
                .where(DagModel.dag_id.in_(ids))):
            row = by_dag[dag_id]
            row.parsed, row.paused = True, bool(paused)
            row.next_run = next_after if row.auto and not paused else None
        newest = (select(DagRun.dag_id, func.max(DagRun.id).label("id")).where(DagRun.dag_id.in_(ids))
                  .group_by(DagRun.dag_id).subquery())
        for dag_id, run_id, state, started in session.execute(
                select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date)
                .join(newest, newest.c.id == DagRun.id)):
            by_dag[dag_id].last_run = {"run_id": run_id, "state": str(state), "started": started}
        for dag_id, n in session.execute(
                select(TaskInstance.dag_id, func.count()).join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.dag_id.in_(ids), HITLDetail.responded_at.is_(None),
                       TaskInstance.state == "deferred").group_by(TaskInstance.dag_id)):
            by_dag[dag_id].approvals = int(n)


def _users_db_state(rows: dict[str, SourceRow], targets: dict[str, str]) -> None:
    from usersync.store.admin_log import last_of
    from usersync.store.cases import waiting_counts
    from usersync.store.source_health import load_all
    from usersync_airflow.hooks import UsersDbHook

    for conn_id in sorted(set(targets.values())):
        names = [n for n, c in targets.items() if c == conn_id]
        hook = UsersDbHook(conn_id)
        try:
            engine = hook.get_conn()
            health, cases, tests = load_all(engine), waiting_counts(engine, names), last_of(engine, "test", names)
        except Exception as exc:  # noqa: BLE001 - one unreachable users database must not hide the others
            log.error("could not read the sources' state from %s: %s", conn_id, exc)
            for name in names:
                rows[name].notes.append(f"users database {conn_id} unreachable: {type(exc).__name__}")
            continue
        finally:
            hook.close()
        for name in names:
            rows[name].health, rows[name].cases, rows[name].last_test = health.get(name), cases.get(name, 0), \
                tests.get(name)


def _last_counts(by_dag: dict[str, SourceRow]) -> None:
    """The last run's status and counts from its summary (a run still going has none yet)."""
    from usersync.core.run_folder import folder_name
    from usersync.run.summaries import read_summary
    from usersync_airflow.dag.run_storage import dag_folder

    for row in by_dag.values():
        if row.last_run is None:
            continue
        folder = folder_name(row.last_run["run_id"])
        summary = read_summary(dag_folder(row.dag_id) / folder)
        row.last_run["folder"] = folder
        if summary:
            row.last_run.update(status=summary.get("status"), mode=summary.get("mode"),
                                counts=summary.get("counts") or {})
