"""The DAG's run data plane through real runs: XCom holds references only, the data is in the run folder."""

from __future__ import annotations

import pytest

from bench.dag_runner import xcom_bytes
from tests.support.helpers import planned, table_rows
from tests.support.rules import ad_rules
from usersync.run import pipeline

pytestmark = pytest.mark.airflow


def _setup(airflow_env, ldap, url, **source):
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules(**source))


def _references_bytes(dr) -> int:
    """XCom of every task but the report (whose text is capped separately)."""
    return sum(len(repr(ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)))
               for ti in dr.get_task_instances() if ti.task_id != "report")


def test_xcom_per_run_is_small_and_does_not_grow_with_the_directory(airflow_env, make_slapd, slapd, tmp_path):
    sizes = {}
    for users, ldap in ((20, make_slapd(users=20)), (1200, slapd)):
        url = f"sqlite:///{tmp_path / f'users{users}.db'}"
        _setup(airflow_env, ldap, url)
        dr = airflow_env.run("user_sync__corp")
        assert dr.state == "success" and len(table_rows(url)) == users
        sizes[users] = (xcom_bytes(dr.run_id), _references_bytes(dr))
    assert all(total <= 64 * 1024 for total, _refs in sizes.values()), sizes
    assert abs(sizes[1200][1] - sizes[20][1]) < 100, sizes  # references: same size for 20 or 1,200 users


def test_a_dry_run_keeps_its_plan_in_the_run_folder_and_writes_nothing(airflow_env, make_slapd, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    _setup(airflow_env, make_slapd(users=15), url)
    dr = airflow_env.run("user_sync__corp", {"dry_run": True})
    assert dr.state == "success"
    assert table_rows(url) == {}
    plan = planned(dr)  # read back from the Parquet files of the run folder
    assert sorted(row["ad_username"] for row in plan["inserts"]) == [f"user{i:06d}" for i in range(15)]
    report = dr.get_task_instance("report").xcom_pull(task_ids="report")
    assert "run data: file://" in report and dr.dag_id in report


def test_extract_and_map_run_once_per_partition(airflow_env, make_slapd, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    _setup(airflow_env, make_slapd(users=30), url, partitions=3)
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    tis = dr.get_task_instances()
    assert sorted(ti.map_index for ti in tis if ti.task_id == "extract") == [0, 1, 2]
    assert sorted(ti.map_index for ti in tis if ti.task_id == "map") == [0, 1, 2]
    assert set(table_rows(url)) == {f"user{i:06d}" for i in range(30)}


@pytest.mark.faults
def test_damaged_run_data_fails_the_run_naming_the_file_and_writes_nothing(airflow_env, make_slapd, tmp_path,
                                                                          monkeypatch):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    _setup(airflow_env, make_slapd(users=10), url)
    assert airflow_env.run("user_sync__corp").state == "success"
    before = table_rows(url)
    real_diff = pipeline.diff_step
    damaged = []

    def diff_after_damage(rules, parts, engine, folder, **options):
        path = folder.path / parts[0]["mapped"]["file"]
        with path.open("ab") as fh:
            fh.write(b"garbage")
        damaged.append(str(path))
        return real_diff(rules, parts, engine, folder, **options)

    monkeypatch.setattr(pipeline, "diff_step", diff_after_damage)
    airflow_env.rules(ad_rules(filter="(&(objectClass=user)(!(sAMAccountName=user000001)))"))
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed"
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()}["diff"] == "failed"
    error = dr.get_task_instance("diff").xcom_pull(task_ids="diff", key="usersync_error")
    assert error["type"] == "RunDataError" and "is damaged" in error["error"]
    assert damaged and damaged[0].removeprefix("file://") in error["error"].replace("file://", "")
    assert table_rows(url) == before  # user000001 was not deleted
