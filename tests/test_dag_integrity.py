"""DAG integrity: the shipped rules load without import errors, and every DAG carries its docs, tags, retries, one active run at a time and its Params."""

from __future__ import annotations

import pytest
from airflow.sdk import AssetAlias

from tests.support.repo import REPO
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow


@pytest.fixture
def shipped_bag(airflow_db, monkeypatch):
    monkeypatch.setenv("USERSYNC_RULES_DIR", str(REPO / "include" / "rules"))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_shipped_rules_load_without_import_errors(shipped_bag):
    assert shipped_bag.import_errors == {}
    assert {"user_sync__demo", "user_sync__corp_ad", "user_sync__openldap", "user_sync__freepbx", "user_sync__cucm", "user_sync__entra",
            "user_import__staff_csv"} <= set(shipped_bag.dag_ids)


def test_csv_imports_are_manual_with_a_file_parameter_and_only_delta_sources_offer_full_sync(shipped_bag):
    dag = shipped_bag.get_dag("user_import__staff_csv")
    assert dag.schedule is None
    every = {"dry_run", "allow_mass_delete", "allow_mass_change", "undo_run", "account", "keep_as_local", "preview_draft",
             "draft_rules"}  # one account, draft previews, undo: all
    assert set(dag.params) == every | {"file"}
    assert set(shipped_bag.get_dag("user_sync__corp_ad").params) == every | {"full_sync"}
    assert set(shipped_bag.get_dag("user_sync__demo").params) == every
    assert set(shipped_bag.get_dag("user_sync__entra").params) == every | {"full_sync"}
    account = shipped_bag.get_dag("user_sync__corp_ad").params.get_param("account")
    assert account.value is None  # optional: an empty form field is the whole source
    assert "the sAMAccountName, the userPrincipalName, the objectGUID or the DN" in account.description


def test_every_dag_has_tags_retries_one_active_run_docs_and_the_pipeline(shipped_bag):
    for dag_id in shipped_bag.dag_ids:
        dag = shipped_bag.get_dag(dag_id)
        assert "usersync" in dag.tags
        assert dag.max_active_runs == 1 and dag.catchup is False
        assert dag.doc_md and "User sync" in dag.doc_md
        assert all(t.retries >= 0 for t in dag.tasks)
        assert [t.task_id for t in dag.topological_sort()] == [
            "check_source", "extract", "map", "diff", "approve", "apply", "report"]
        assert dag.get_task("apply").upstream_task_ids == {"diff", "approve"}
        assert dag.get_task("diff").downstream_task_ids == {"approve", "apply"}  # diff ends with the guard: a branch


def test_the_approval_task_follows_the_rules_and_the_pages_say_what_dry_run_and_approval_do(shipped_bag):
    demo = shipped_bag.get_dag("user_sync__demo")
    approve = demo.get_task("approve")
    assert approve.options == ["Approve", "Reject", "Keep them as local users"] and approve.retries == 0
    assert approve.response_timeout.total_seconds() == 24 * 3600  # safety.approval_timeout_hours default
    assert "**Dry run** reads and compares but writes nothing" in demo.doc_md
    assert "waits up to 24 h in **Required Actions**" in demo.doc_md
    assert "dry run = report only" in demo.description
    assert "Required Actions" in demo.params.get_param("dry_run").description


def test_each_dag_announces_its_target_users_table_through_an_alias_of_apply(shipped_bag):
    for dag_id in shipped_bag.dag_ids:
        dag = shipped_bag.get_dag(dag_id)
        (alias,) = dag.get_task("apply").outlets  # apply decides at run time whether there is an event
        assert isinstance(alias, AssetAlias) and alias.name.startswith("usersync_users_written__")
    assert shipped_bag.get_dag("user_sync__demo").get_task("apply").outlets[0].name == "usersync_users_written__usersync_target"


def test_schedule_and_retries_come_from_the_rules_file(shipped_bag):
    corp = shipped_bag.get_dag("user_sync__corp_ad")
    assert corp.timetable.expression == "30 2 * * *"
    assert str(corp.timetable.timezone) == "Europe/Rome"
    assert corp.get_task("extract").retries == 2
    assert corp.get_task("extract").retry_delay.total_seconds() == 600
    demo = shipped_bag.get_dag("user_sync__demo")
    assert demo.schedule is None  # manual runs only


def test_only_rules_with_write_back_get_its_tasks_after_apply_and_its_parameter(airflow_env):
    from tests.test_write_back import wb_rules

    airflow_env.rules(ad_rules("plain"))
    airflow_env.rules({**wb_rules(), "source": {**wb_rules()["source"], "name": "numbers"}})
    bag = airflow_env.dagbag()
    assert bag.import_errors == {}
    plain, numbers = bag.get_dag("user_sync__plain"), bag.get_dag("user_sync__numbers")
    assert "write_back" not in plain.task_ids and "allow_mass_write_back" not in plain.params
    assert [t.task_id for t in numbers.topological_sort()] == [
        "check_source", "extract", "map", "diff", "approve", "apply", "plan_write_back", "approve_write_back",
        "write_back", "report"]
    assert numbers.get_task("plan_write_back").upstream_task_ids == {"apply", "extract"}
    assert numbers.get_task("plan_write_back").downstream_task_ids == {"approve_write_back", "write_back"}
    assert numbers.get_task("approve_write_back").options == ["Approve", "Reject"]
    assert numbers.get_task("report").upstream_task_ids == {"apply", "write_back"}
    assert "allow_mass_write_back" in numbers.params and "`extension` → `ipPhone`" in numbers.doc_md


def test_a_malformed_rules_file_is_an_import_error_and_valid_sources_still_load(airflow_env):
    airflow_env.rules(ad_rules("good_source"))
    bad = ad_rules("bad_source")
    bad["fields"]["extension"] = {"policy": "on_insert", "value": "100"}
    airflow_env.rules(bad)
    bag = airflow_env.dagbag()
    assert "user_sync__good_source" in bag.dag_ids
    assert "user_sync__bad_source" not in bag.dag_ids
    (where, message), = bag.import_errors.items()
    assert where.endswith("user_sync_rules_errors.py")
    assert "bad_source.yaml" in message and "fields.extension" in message and "not available" in message


def test_parsing_does_no_network_or_database_io(airflow_env, monkeypatch):
    """Parsing a rules file whose connections do not exist still gives a DAG (no I/O at parse time)."""
    import socket

    def no_network(*a, **k):
        raise AssertionError("network I/O at DAG parse time")

    airflow_env.rules(ad_rules("offline", conn_id="does_not_exist"))
    monkeypatch.setattr(socket.socket, "connect", no_network)
    bag = airflow_env.dagbag()
    assert "user_sync__offline" in bag.dag_ids and bag.import_errors == {}


def test_stopping_a_process_group_leaves_no_process_even_when_children_ignore_sigterm():
    """What `make airflow` (Ctrl-C) and the distributed test rely on: a bounded stop with nothing left over."""
    import subprocess
    import sys
    import time

    from devtools.netutil import group_members, stop_groups

    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "[subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, "
                "signal.SIG_IGN); time.sleep(600)']) for _ in range(3)]; time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", stubborn], start_new_session=True)
    time.sleep(1.0)
    assert len(group_members(proc.pid)) == 4  # the parent and its three children, all ignoring SIGTERM
    started = time.monotonic()
    stop_groups([proc], grace=1)
    assert time.monotonic() - started < 10
    assert group_members(proc.pid) == []


def test_a_task_process_builds_only_the_dag_it_runs(shipped_bag):
    from usersync_airflow.dag.dag_factory import build_dags

    every, errors = build_dags(REPO / "include" / "rules")
    only, same_errors = build_dags(REPO / "include" / "rules", only="user_sync__demo")
    assert set(every) == set(shipped_bag.dag_ids) and len(every) > 1
    assert set(only) == {"user_sync__demo"} and same_errors.keys() == errors.keys()
    assert [t.task_id for t in only["user_sync__demo"].topological_sort()] == [
        t.task_id for t in every["user_sync__demo"].topological_sort()]


def test_the_preload_module_imports_everything_a_task_needs(tmp_path):
    """What the forkserver and the Celery workers import at start: nothing in it may fail (a failure would only
    cost speed, so nothing else would notice)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; from usersync_airflow.runtime import preload; "
            "print(json.dumps({'failed': preload.preload(), 'pandas': 'pandas' in sys.modules, "
            "'steps': 'usersync_airflow.dag.tasks' in sys.modules, 'readers': 'usersync.sources.ldap.reader' in sys.modules}))")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"failed": [], "pandas": True, "steps": True, "readers": True}


def test_every_step_has_a_timeout(shipped_bag):
    """A hung step never holds a run (nor the next day's) for ever: every task but the approvals, which have their
    own answer timeout, carries an execution timeout."""
    for dag_id in ("user_sync__corp_ad", "user_sync__scim_hr", "user_sync__cucm"):
        dag = shipped_bag.get_dag(dag_id)
        for task in dag.tasks:
            if task.task_id.startswith("approve"):
                assert task.response_timeout is not None, (dag_id, task.task_id)
            else:
                assert task.execution_timeout is not None, (dag_id, task.task_id)
