"""End to end through Airflow: dag.test() runs slapd → users table on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from devtools.ad_data import ad_user
from tests.conftest import ad_rules
from usersync.schema import users

pytestmark = pytest.mark.airflow


@pytest.fixture(params=["sqlite", "postgresql"])
def users_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    return request.getfixturevalue("pg_url")


def _rows(url):
    eng = create_engine(url)
    with eng.connect() as c:
        rows = {r.ad_username: dict(r._mapping) for r in c.execute(select(users))}
    eng.dispose()
    return rows


def _written(dr):
    return dr.get_task_instance("apply").xcom_pull(task_ids="apply")


def test_sync_inserts_then_writes_nothing_then_exactly_the_changes(airflow_env, make_slapd, users_url):
    ldap = make_slapd(users=30)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(users_url)
    airflow_env.rules(ad_rules())

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 30, "updated": 0, "deleted": 0}
    rows = _rows(users_url)
    assert len(rows) == 30
    assert rows["user000007"]["extension"] == "10007"
    assert rows["user000007"]["source"] == "corp" and rows["user000007"]["domain"] == "EXAMPLE"

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 0, "updated": 0, "deleted": 0}

    ldap.add_user(100)
    ldap.modify_user(3, department="Board")
    ldap.delete_user(5)
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    assert _written(dr) == {"inserted": 1, "updated": 1, "deleted": 1}
    plan = dr.get_task_instance("diff").xcom_pull(task_ids="diff")
    assert [u["changes"] for u in plan["updates"]] == [{"department": [ad_user(3)["department"], "Board"]}]
    rows = _rows(users_url)
    assert "user000005" not in rows and "user000100" in rows
    assert rows["user000003"]["department"] == "Board"
