"""What the console asks of Airflow about a source's DAG: trigger a run, unpause it, whether the DAG processor has
read it yet and how a run is doing."""

from __future__ import annotations

from typing import Any

from usersync_airflow.ui.access import user_name


def trigger(dag_id: str, user, conf: dict[str, Any]) -> str:
    """A manual run of ``dag_id`` with ``conf``, in the user's name; its run id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user_name(user), conf=conf)
    return str(getattr(run, "run_id", ""))


def unpause(dag_id: str) -> bool:
    """Unpause ``dag_id`` (a new DAG is paused at creation in most installations, and runs of a paused DAG never
    start); whether it was paused."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        done = session.execute(update(DagModel).where(DagModel.dag_id == dag_id, DagModel.is_paused.is_(True))
                               .values(is_paused=False))
    return bool(getattr(done, "rowcount", 0))


def dag_state(dag_id: str, run_id: str = "") -> tuple[bool, str]:
    """Whether the DAG processor has read ``dag_id``, and the state of its run ``run_id`` ("" if none)."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        parsed = session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id,
                                                              DagModel.is_stale.is_(False))) is not None
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)) \
            if run_id else None
    return parsed, str(state or "")
