"""End to end through Airflow: dag.test() runs slapd → users table on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest

from devtools.ad_data import ad_user
from tests.support.helpers import planned, table_rows
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow


def _written(dr):
    return dr.get_task_instance("apply").xcom_pull(task_ids="apply")["written"]


def test_sync_inserts_then_writes_nothing_then_exactly_the_changes(airflow_env, make_slapd, users_url):
    ldap = make_slapd(users=30)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(users_url)
    airflow_env.rules(ad_rules())

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 30, "updated": 0, "deleted": 0, "disabled": 0}
    rows = table_rows(users_url)
    assert len(rows) == 30
    assert rows["user000007"]["extension"] == "10007"
    assert rows["user000007"]["source"] == "corp" and rows["user000007"]["domain"] == "EXAMPLE"

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 0, "updated": 0, "deleted": 0, "disabled": 0}

    ldap.add_user(100)
    ldap.modify_user(3, department="Board")
    ldap.delete_user(5)
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 1, "updated": 1, "deleted": 1, "disabled": 0}
    plan = planned(dr)
    assert [u["changes"] for u in plan["updates"]] == [{"department": [ad_user(3)["department"], "Board"]}]
    rows = table_rows(users_url)
    assert "user000005" not in rows and "user000100" in rows
    assert rows["user000003"]["department"] == "Board"


def _states(dr):
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_wrong_password_fails_at_check_source_writes_nothing_and_leaks_nothing(airflow_env, slapd, tmp_path, capfd, caplog):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    secret = "Wrong-But-Secret-Passw0rd"
    airflow_env.connection("corp_ldap", **{**slapd.connection_extra(), "password": secret})
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed"
    states = _states(dr)
    assert states["check_source"] == "failed"
    assert states["apply"] == "upstream_failed"
    assert table_rows(url) == {}
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert "invalid credentials" in text and "svc-usersync" in text
    assert secret not in text


def test_unreachable_directory_fails_without_touching_users(airflow_env, make_slapd, tmp_path, capfd):
    from devtools.netutil import free_port

    url = f"sqlite:///{tmp_path / 'users.db'}"
    ldap = make_slapd(users=5)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    assert airflow_env.run("user_sync__corp").state == "success"
    before = table_rows(url)
    closed = free_port()
    airflow_env.connection("corp_ldap", **ldap.connection_extra(ldaps_port=closed))
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed" and _states(dr)["check_source"] == "failed"
    assert f"cannot connect to ldaps://127.0.0.1:{closed}" in capfd.readouterr().out
    assert table_rows(url) == before


def test_skipped_accounts_are_listed_in_the_summary_and_the_rest_is_synced(airflow_env, make_slapd, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    ldap = make_slapd(users=4)
    ldap.modify_user(2, mail="not-an-e-mail")
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert set(table_rows(url)) == {"user000000", "user000001", "user000003"}
    summary = dr.get_task_instance("report").xcom_pull(task_ids="report")
    assert "skipped 1" in summary
    assert "email: not an e-mail address: 'not-an-e-mail'" in summary and "Marco" in summary


def test_no_password_in_any_xcom_or_log(airflow_env, make_slapd, tmp_path, capfd, caplog):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    ldap = make_slapd(users=3)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    xcoms = [repr(ti.xcom_pull(task_ids=ti.task_id)) for ti in dr.get_task_instances()]
    out = capfd.readouterr()
    everything = "".join(xcoms) + out.out + out.err + caplog.text
    assert "ldaps://127.0.0.1" in everything  # the logs were captured
    assert ldap.service_password not in everything


def test_an_undefined_connection_fails_at_once_despite_retries(airflow_env, tmp_path):
    import time

    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.users_db(url)
    data = ad_rules(conn_id="never_defined")
    data["run"] = {"retries": 2, "retry_delay_minutes": 10}
    airflow_env.rules(data)
    started = time.monotonic()
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed" and time.monotonic() - started < 120  # not waiting 2 × 10 min
    ti = dr.get_task_instance("check_source")
    assert ti.state == "failed" and ti.try_number == 1
    error = ti.xcom_pull(task_ids="check_source", key="usersync_error")
    assert error["step"] == "check_source" and "never_defined" in error["error"]
