"""The fault matrix (README "Faults"): real servers and processes killed or stopped mid-run, and the users
table checked afterwards — fully updated or untouched, and a rerun converges.

Where the fault must hit a precise moment (after the first page, after the diff, after the first batch), the
test wraps the step's own progress call in this process (``dag.test()`` runs the tasks here) and does the
real thing from there: SIGKILL to slapd, ``pg_terminate_backend``, stopping PostgreSQL. The SIGKILLed task is
a separate Airflow process (``bench.dag_runner``), killed while its apply transaction holds written rows.

Rows 5–7 of the matrix are tested where their feature is: ``test_safe_runs`` (SMTP down), ``test_dag_run_data``
(run data damaged), and ``test_a_directory_that_never_answers_times_out`` below.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml
from sqlalchemy import create_engine, select, text, update

from bench.dag_runner import admin_env
from devtools.postgres import PostgresServer
from tests.support.helpers import table_rows
from tests.support.repo import REPO
from tests.support.rules import ad_rules
from usersync.core.progress import Progress
from usersync.core.users_table import user_events, users
from usersync.sources import SourceUnreachable
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings

pytestmark = [pytest.mark.faults, pytest.mark.airflow]


@pytest.fixture
def users_pg(tmp_path):
    """A private PostgreSQL for the users table: these tests stop and kill it."""
    server = PostgresServer(tmp_path / "pg").start()
    url = server.create_database("users")
    yield server, url
    server.stop()


def _setup(airflow_env, ldap, url, **run):
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    data = ad_rules(page_size=500, partitions=1)
    data["run"] = {"retries": 0, **run}
    data["safety"] = {"max_delete_percent": 100}
    airflow_env.rules(data)


def _fault_at(monkeypatch, step: str, action) -> list:
    """Run ``action`` once, at the first progress call of ``step`` (``extract …``, ``apply …``); returns the list
    of times it fired (the fault stays armed for one shot only)."""
    fired, advance = [], Progress.advance

    def advance_then_fault(self, n=1):
        advance(self, n)
        if self.what.startswith(step) and not fired:
            fired.append(time.monotonic())
            action()

    monkeypatch.setattr(Progress, "advance", advance_then_fault)
    return fired


def test_directory_killed_after_the_first_page_changes_nothing_and_a_rerun_converges(
        airflow_env, make_slapd, tmp_path, monkeypatch):
    ldap = make_slapd(3000)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    _setup(airflow_env, ldap, url)
    assert airflow_env.run("user_sync__corp").state == "success"
    ldap.modify_user(7, givenName="Renamed in AD")
    before = table_rows(url)

    fired = _fault_at(monkeypatch, "extract", lambda: (ldap.proc.kill(), ldap.proc.wait()))
    dr = airflow_env.run("user_sync__corp")
    assert fired and dr.state == "failed"
    error = dr.get_task_instance("extract", map_index=0).xcom_pull(task_ids="extract", key="usersync_error",
                                                                 map_indexes=0)
    assert error["type"] == "SourceUnreachable" and "lost the connection" in error["error"]
    assert table_rows(url) == before  # 0 rows changed

    ldap.resume()
    assert airflow_env.run("user_sync__corp").state == "success"
    assert table_rows(url)["user000007"]["first_name"] == "Renamed in AD" and len(table_rows(url)) == 3000


def _stale(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:  # every user differs from the directory: the next run updates them all
        conn.execute(update(users).values(first_name="stale"))
    engine.dispose()


def _terminate_writer(url: str) -> None:
    """End the PostgreSQL backend that holds an open write transaction (the apply's), as a crash would."""
    admin = create_engine(url)
    with admin.connect() as conn:
        killed = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                   "current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"))
        assert any(r[0] for r in killed)
    admin.dispose()


def _log_records(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(user_events).order_by(user_events.c.id))]
    engine.dispose()
    return rows


def test_a_run_killed_after_its_writes_and_log_but_before_commit_leaves_no_record(
        airflow_env, make_slapd, users_pg, monkeypatch):
    from usersync.store.user_log import UserLog

    ldap = make_slapd(40)
    _server, url = users_pg
    _setup(airflow_env, ldap, url)
    assert airflow_env.run("user_sync__corp").state == "success"
    _stale(url)
    before, records = table_rows(url), _log_records(url)
    write, fired = UserLog.write, []

    def write_then_die(self, last: bool = False) -> int:
        added = write(self, last)
        if last:  # every write and every record of the run is in the transaction: the backend dies before COMMIT
            _terminate_writer(url)
            fired.append(added)
        return added

    monkeypatch.setattr(UserLog, "write", write_then_die)
    dr = airflow_env.run("user_sync__corp")
    assert fired and dr.state == "failed" and dr.get_task_instance("apply").state == "failed"
    assert table_rows(url) == before and _log_records(url) == records  # no write, no record
    monkeypatch.setattr(UserLog, "write", write)
    rerun = airflow_env.run("user_sync__corp")
    assert rerun.state == "success"
    logged = [r for r in _log_records(url) if r not in records]
    assert len(logged) == 40 and {r["action"] for r in logged} == {"updated"}
    assert not any(r["first_name"] == "stale" for r in table_rows(url).values())


def test_postgresql_backend_terminated_mid_apply_rolls_back_and_a_rerun_converges(
        airflow_env, make_slapd, users_pg, monkeypatch):
    ldap = make_slapd(12000)
    _server, url = users_pg
    _setup(airflow_env, ldap, url)
    assert airflow_env.run("user_sync__corp").state == "success"
    _stale(url)
    before = table_rows(url)

    fired = _fault_at(monkeypatch, "apply", lambda: _terminate_writer(url))  # after the first batch of 5,000 updates
    dr = airflow_env.run("user_sync__corp")
    assert fired and dr.state == "failed" and dr.get_task_instance("apply").state == "failed"
    assert table_rows(url) == before  # rolled back: identical

    assert airflow_env.run("user_sync__corp").state == "success"
    rows = table_rows(url)
    assert len(rows) == 12000 and not any(r["first_name"] == "stale" for r in rows.values())


def test_task_process_sigkilled_during_apply_rolls_back_and_a_rerun_converges(make_slapd, users_pg, tmp_path):
    ldap = make_slapd(12000)
    _server, url = users_pg
    home, rules_dir = tmp_path / "airflow", tmp_path / "rules"
    rules_dir.mkdir()
    data = ad_rules(page_size=1000, partitions=1)
    data["run"] = {"retries": 0}
    (rules_dir / "corp.yaml").write_text(yaml.safe_dump(data))
    from sqlalchemy import make_url

    u = make_url(url)
    target = {"conn_type": "postgres", "host": u.host, "port": u.port, "login": u.username, "schema": u.database}
    env = admin_env(home, rules_dir, {"corp_ldap": ldap.connection_extra(), "usersync_target": target})

    def runner() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "bench.dag_runner", str(REPO / "dags")], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert json.loads(proc.stdout.readline())["ready"]
        proc.stdin.write(json.dumps({"run": "user_sync__corp"}) + "\n")
        proc.stdin.flush()
        return proc

    first = runner()
    assert json.loads(first.stdout.readline())["state"] == "success"
    first.stdin.close()
    first.wait(60)
    _stale(url)
    before = table_rows(url)

    proc = runner()
    engine = create_engine(url)
    deadline, killed = time.monotonic() + 120, False
    with engine.connect() as conn:
        while time.monotonic() < deadline and not killed:  # the apply transaction has written rows: kill -9
            writing = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL")).scalar()
            conn.rollback()
            if writing:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.01)
    proc.wait(30)
    assert killed and proc.returncode == -signal.SIGKILL
    time.sleep(1)  # PostgreSQL notices the dead client and rolls its transaction back
    assert table_rows(url) == before

    rerun = runner()
    assert json.loads(rerun.stdout.readline())["state"] == "success"
    rerun.stdin.close()
    rerun.wait(60)
    rows = table_rows(url)
    assert len(rows) == 12000 and not any(r["first_name"] == "stale" for r in rows.values())
    engine.dispose()


def test_postgresql_down_before_apply_is_retried_and_applied_once(airflow_env, make_slapd, users_pg, monkeypatch):
    import usersync.run.pipeline as pipeline

    ldap = make_slapd(200)
    server, url = users_pg
    _setup(airflow_env, ldap, url, retries=2, retry_delay_minutes=0.1)  # 6 s
    diff_step, back = pipeline.diff_step, threading.Timer(2.0, server.resume)

    def diff_then_stop_postgresql(*args, **kwargs):
        result = diff_step(*args, **kwargs)
        server.stop()  # down between diff and apply...
        back.start()  # ...and back 2 s later, before the retry
        return result

    monkeypatch.setattr(pipeline, "diff_step", diff_then_stop_postgresql)
    dr = airflow_env.run("user_sync__corp")
    back.join()
    assert dr.state == "success"
    apply = dr.get_task_instance("apply")
    assert apply.try_number == 2  # the first try met the stopped server, the retry applied
    assert apply.xcom_pull(task_ids="apply")["written"]["inserted"] == 200
    assert len(table_rows(url)) == 200  # applied once: no row twice


def test_a_directory_that_never_answers_times_out_with_a_clear_error():
    with socket.socket() as silent:  # accepts connections (the kernel does), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = LdapSettings("127.0.0.1", "cn=x", "pw", ldaps_port=port, ldap_port=port, connect_timeout=2,
                                receive_timeout=2)
        started = time.monotonic()
        with pytest.raises(SourceUnreachable, match=f"127.0.0.1:{port}") as failed:
            LdapDirectory.open(settings)
        assert time.monotonic() - started < 15  # the configured timeouts, not a hang
    assert "timed out" in str(failed.value).lower() or "timeout" in str(failed.value).lower(), str(failed.value)
