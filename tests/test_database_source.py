"""The SQL database source on real PostgreSQL, SQLite and MariaDB (a FreePBX userman_users table)."""

from __future__ import annotations

import logging

import pytest
import yaml
from sqlalchemy import URL, create_engine, make_url, select, text

from devtools.netutil import free_port
from tests.support.repo import REPO
from usersync.core.users_table import users
from usersync.plan.mapping import map_records
from usersync.rules import parse_rules
from usersync.sources import SourceAuthError, SourceQueryError, SourceUnreachable
from usersync.sources.database.reader import DatabaseSource

FREEPBX_RULES = yaml.safe_load((REPO / "include" / "rules" / "freepbx.yaml").read_text())


def _rules(**source):
    data = yaml.safe_load(yaml.safe_dump(FREEPBX_RULES))
    data["source"].update(source)
    return parse_rules(data)


def _maria_url(mariadb, database, password=None) -> URL:
    return URL.create("mysql+pymysql", username="root", password=password or mariadb.root_password,
                      host="127.0.0.1", port=mariadb.port, database=database)


def _source(rules, url):
    return DatabaseSource(rules.source, url, rules.source_attributes())


def test_freepbx_query_on_mariadb_streams_records_the_rules_map(mariadb, freepbx_db, caplog):
    _conn, name = freepbx_db
    rules = _rules(chunk_size=10)
    caplog.set_level(logging.INFO, logger="usersync")
    with _source(rules, _maria_url(mariadb, name)) as src:
        info = src.check()
        assert info["url"].startswith("mysql+pymysql://root:***@127.0.0.1")
        records = list(src.records(info))
    assert len(records) == 25
    assert records[0].account == "query row 1 (username=pbxuser0000)"
    assert "password" not in records[0].attributes
    mapped, skipped = map_records(rules, records)
    assert skipped == []
    by_user = {m.ad_username: m for m in mapped}
    assert by_user["pbxuser0003"].values["extension"] == "2003"
    assert by_user["pbxuser0009"].values["extension"] is None  # 'none' in FreePBX
    assert by_user["pbxuser0003"].domain == "FREEPBX"
    assert any("extract a SELECT query: 25" in m for m in caplog.messages)


def test_a_table_on_postgresql_and_a_domain_column(pg_url):
    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE staff (login text, dom text, fname text, lname text, email text, department text,"
                       " language text, cell text, extension text)"))
        c.execute(text("INSERT INTO staff VALUES ('jdoe', 'CORP', 'J', 'Doe', 'j@x.test', 'IT', 'en', NULL, '300'),"
                       " ('asmith', 'LAB', 'A', 'Smith', 'a@x.test', 'HR', 'en', NULL, 42)"))
    engine.dispose()
    rules = parse_rules({**FREEPBX_RULES, "source": {"name": "hr_db", "type": "database", "conn_id": "x",
                                                     "table": "staff", "key_attribute": "login",
                                                     "domain_attribute": "dom"},
                         "fields": {**FREEPBX_RULES["fields"], "username": {"policy": "import", "attribute": "login"}}})
    with _source(rules, make_url(pg_url)) as src:
        records = list(src.records(src.check()))
    mapped, _ = map_records(rules, records)
    assert {(m.ad_username, m.domain, m.values["extension"]) for m in mapped} == {("jdoe", "CORP", "300"), ("asmith", "LAB", "42")}


def test_sqlite_table(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'hr.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE userman_users (username, fname, lname, email, department, language, cell, extension)"))
        c.execute(text("INSERT INTO userman_users VALUES ('u1', 'A', 'B', 'u1@x.test', 'IT', 'en', '', 100)"))
    rules = _rules(query=None, table="userman_users")
    with _source(rules, engine.url) as src:
        (record,) = list(src.records(src.check()))
    assert record.get("extension") == "100" and record.get("username") == "u1"


def test_a_column_the_rules_need_is_missing(mariadb, freepbx_db):
    _conn, name = freepbx_db
    rules = _rules(query="SELECT username, fname FROM userman_users")
    with _source(rules, _maria_url(mariadb, name)) as src, pytest.raises(SourceQueryError, match="no column.*lname"):
        src.check()


def test_wrong_password_and_unreachable_server(mariadb, freepbx_db):
    _conn, name = freepbx_db
    with _source(_rules(), _maria_url(mariadb, name, "Not-Right-Pw3")) as src:
        with pytest.raises(SourceAuthError, match="refused the credentials") as err:
            src.check()
    assert "Not-Right-Pw3" not in str(err.value)
    url = URL.create("mysql+pymysql", username="root", password="x", host="127.0.0.1", port=free_port(), database=name)
    with _source(_rules(), url) as src, pytest.raises(SourceUnreachable, match="cannot connect"):
        src.check()


def test_a_failing_query_is_a_query_error(mariadb, freepbx_db):
    _conn, name = freepbx_db
    with _source(_rules(query="SELECT * FROM no_such_table"), _maria_url(mariadb, name)) as src:
        with pytest.raises(SourceQueryError, match="no_such_table"):
            src.check()


@pytest.mark.parametrize("query", ["DELETE FROM userman_users", "SELECT 1; DROP TABLE userman_users"])
def test_only_one_select_is_accepted(query):
    from usersync.rules import RulesError

    with pytest.raises(RulesError, match="read-only SELECT"):
        _rules(query=query)


def test_broken_rows_are_skipped_and_the_rest_mapped(mariadb, freepbx_db):
    conn, name = freepbx_db
    with conn.cursor() as c:
        c.execute("UPDATE userman_users SET email = 'not-mail' WHERE username = 'pbxuser0004'")
        c.execute("UPDATE userman_users SET default_extension = '2001' WHERE username = 'pbxuser0005'")  # clash
    rules = _rules()
    with _source(rules, _maria_url(mariadb, name)) as src:
        mapped, skipped = map_records(rules, src.records(src.check()))
    assert len(mapped) == 24 and skipped[0].account == "query row 5 (username=pbxuser0004)"
    from tests.support.small_runs import compute_diff

    plan = compute_diff(rules, mapped, [], skipped)
    # pbxuser0005 now claims pbxuser0001's extension: inserted without it (the number is held aside), not both
    assert len(plan.inserts) == 24
    assert {i.row["username"]: i.row["extension"] for i in plan.inserts
            if i.row["username"] in ("pbxuser0001", "pbxuser0005")} == {"pbxuser0001": "2001", "pbxuser0005": None}
    assert [s.account for s in plan.skipped] == ["query row 5 (username=pbxuser0004)"]


@pytest.mark.airflow
def test_freepbx_to_postgresql_end_to_end(airflow_env, mariadb, freepbx_db, pg_url):
    _conn, name = freepbx_db
    airflow_env.connection("usersync_freepbx_db", conn_type="mysql", host="127.0.0.1", port=mariadb.port,
                           login="root", password=mariadb.root_password, schema=name)
    airflow_env.users_db(pg_url)
    data = dict(FREEPBX_RULES, schedule={"auto": False}, run={"retries": 0})
    airflow_env.rules(data)
    dr = airflow_env.run("user_sync__freepbx")
    assert dr.state == "success"
    engine = create_engine(pg_url)
    with engine.connect() as c:
        rows = {r.username: r for r in c.execute(select(users))}
    assert len(rows) == 25 and rows["pbxuser0007"].extension == "2007" and rows["pbxuser0007"].source == "freepbx"
    assert airflow_env.run("user_sync__freepbx").get_task_instance("apply").xcom_pull(task_ids="apply")["written"] == \
        {"inserted": 0, "updated": 0, "deleted": 0, "disabled": 0}
    # the database goes away: the run fails at check_source and nothing changes
    airflow_env.connection("usersync_freepbx_db", conn_type="mysql", host="127.0.0.1", port=free_port(),
                           login="root", password="x", schema=name)
    dr = airflow_env.run("user_sync__freepbx")
    assert dr.state == "failed"
    with engine.connect() as c:
        assert c.execute(select(users)).fetchall().__len__() == 25
    engine.dispose()
