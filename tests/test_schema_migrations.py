"""Schema migrations (Alembic) on both backends: a fresh database is created at the newest revision, a database
made before migrations existed is upgraded keeping every row, and a sync refuses a database behind or ahead."""

from __future__ import annotations

import importlib.util
from datetime import UTC
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from usersync.cli import main as cli
from usersync.core.users_table import metadata, users
from usersync.store import schema_version
from usersync.store.schema_version import SchemaVersionError, ensure_schema, head, upgrade


def _first_landed_schema():
    """The schema module as first landed (tests/data), which created the table with ``create_all``."""
    spec = importlib.util.spec_from_file_location("schema_first_landed",
                                                  Path(__file__).parent / "data" / "schema_first_landed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context(conn) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table": schema_version.VERSION_TABLE})


def test_fresh_database_is_created_at_the_newest_revision_and_matches_the_tables(users_url):
    engine = create_engine(users_url)
    ensure_schema(engine)
    assert schema_version.current(engine) == head() == "0010"
    with engine.connect() as conn:  # the migrations build exactly what schema.py describes
        diffs = compare_metadata(_context(conn), metadata)
    assert diffs == []
    assert {"users", "source_state", "user_events", "cases", schema_version.VERSION_TABLE} <= set(inspect(engine).get_table_names())
    with pytest.raises(Exception, match="(?i)unique"):  # expression indexes: compare_metadata cannot see them on SQLite
        with engine.begin() as conn:
            conn.execute(insert(users), [{"username": "a", "ad_username": "x", "domain": "D"},
                                         {"username": "b", "ad_username": "X", "domain": "d"}])
    engine.dispose()


def test_every_field_of_a_sources_health_has_its_column_in_the_migrated_table(users_url):
    """``store.source_health`` maps ``Health`` to ``source_health`` by name: a field the migrations do not create
    would fail only when a source first fails."""
    from usersync.store.source_health import HEALTH_FIELDS

    engine = create_engine(users_url)
    ensure_schema(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("source_health")}
    engine.dispose()
    assert set(HEALTH_FIELDS) <= columns, set(HEALTH_FIELDS) - columns


def test_first_landed_database_is_refused_then_upgraded_keeping_every_row(users_url):
    engine = create_engine(users_url)
    old = _first_landed_schema()
    old.create_schema(engine)  # exactly what the first release created: no version table, no disabled_by_sync
    rows = [{"username": f"u{i}", "ad_username": f"U{i}", "domain": "CORP", "source": "corp", "extension": f"{1000 + i}",
             "external_id": f"{{guid-{i}}}"} for i in range(50)] + [{"username": "local.admin"}]
    with engine.begin() as conn:
        conn.execute(insert(old.users), rows[:-1])
        conn.execute(insert(old.users), rows[-1:])

    with pytest.raises(SchemaVersionError, match=r"older usersync .*revision 0001.*run: usersync db upgrade --url"):
        ensure_schema(engine)
    assert schema_version.current(engine) is None  # refusing changed nothing

    assert cli(["db", "upgrade", "--url", users_url]) == 0
    assert schema_version.current(engine) == head()
    ensure_schema(engine)  # now accepted
    with engine.connect() as conn:
        kept = {r.username: r for r in conn.execute(select(users))}
        diffs = compare_metadata(_context(conn), metadata)
    assert diffs == []
    assert len(kept) == 51 and kept["u7"].extension == "1007" and kept["u7"].external_id == "{guid-7}"
    assert kept["u7"].disabled_by_sync is False and kept["local.admin"].ad_username is None
    with pytest.raises(Exception, match="(?i)unique"):  # the case-insensitive unique indexes survived the upgrade
        with engine.begin() as conn:
            conn.execute(insert(users), [{"username": "U7"}])
    engine.dispose()


def test_a_database_behind_or_ahead_is_refused_naming_the_fix(users_url):
    engine = create_engine(users_url)
    upgrade(engine, "0002")
    with pytest.raises(SchemaVersionError, match=r"revision 0002, behind this usersync \(0010\).*usersync-db upgrade x"):
        ensure_schema(engine, upgrade_command="usersync-db upgrade x")
    assert not {"sync_state", "source_state"} & set(inspect(engine).get_table_names())
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {schema_version.VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(SchemaVersionError, match="revision 0099, newer than this usersync knows"):
        ensure_schema(engine)
    assert cli(["db", "status", "--url", users_url]) == 1
    engine.dispose()


def test_stored_positions_survive_the_upgrades_to_a_delta_link_and_to_per_source_state(users_url):
    """0003 → 0004 adds sync_state.cursor, 0006 moves every row into source_state: a stored AD watermark and
    a Graph delta link stay usable (no forced full read), and 0006's downgrade gives them back."""
    from datetime import datetime

    from usersync.store.source_state import load_watermark

    engine = create_engine(users_url)
    upgrade(engine, "0003")
    at = datetime(2026, 11, 20, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sync_state (source, server, invocation_id, usn, rules_hash, full_at, saved_at) "
                          "VALUES ('corp', 'CN=DC1', 'inv-1', 4711, 'h', :at, :at)"), {"at": at})
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sync_state (source, server, invocation_id, usn, rules_hash, full_at, saved_at, "
                          "cursor) VALUES ('cloud', 'tenant-1', 'graph', 0, 'h', :at, :at, 'https://g/delta?t=1')"),
                     {"at": at})
    upgrade(engine)
    corp, cloud = load_watermark(engine, "corp"), load_watermark(engine, "cloud")
    assert (corp.read.server, corp.read.position, corp.rules_hash) == ("CN=DC1", {"invocation_id": "inv-1", "usn": 4711}, "h")
    assert (cloud.read.server, cloud.read.get("cursor"), cloud.full_at) == ("tenant-1", "https://g/delta?t=1", at)
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(schema_version._config(conn), "0005")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT source, server, invocation_id, usn, cursor FROM sync_state ORDER BY source")).all()
    assert [tuple(r) for r in back] == [("cloud", "tenant-1", "graph", 0, "https://g/delta?t=1"),
                                        ("corp", "CN=DC1", "inv-1", 4711, None)]
    engine.dispose()


def test_the_leavers_upgrade_keeps_every_row_and_starts_the_grace_of_users_disabled_before_it(users_url):
    """0004 → 0005 adds users.left_at and users.sync_protected: every row and value stays; a user the policy
    'disable' disabled before gets left_at = the upgrade's time (a grace period starts then, never earlier)."""
    from datetime import datetime, timedelta

    engine = create_engine(users_url)
    upgrade(engine, "0004")
    rows = [{"username": f"u{i}", "ad_username": f"U{i}", "domain": "CORP", "source": "corp",
             "extension": f"{2000 + i}", "external_id": f"{{guid-{i}}}", "disabled_by_sync": i % 10 == 0,
             "enabled": i % 10 != 0, "voicemail_enabled": i % 3 == 0} for i in range(40)] + [{"username": "local.admin"}]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (username, ad_username, domain, source, extension, external_id, "
                          "disabled_by_sync, enabled, voicemail_enabled) VALUES (:username, :ad_username, :domain, "
                          ":source, :extension, :external_id, :disabled_by_sync, :enabled, :voicemail_enabled)"),
                     rows[:-1])
        conn.execute(text("INSERT INTO users (username) VALUES ('local.admin')"))
        before = {r.username: dict(r._mapping) for r in conn.execute(text("SELECT * FROM users"))}
    started = datetime.now(UTC) - timedelta(seconds=5)
    upgrade(engine)
    with engine.connect() as conn:
        raw = {r.username: dict(r._mapping) for r in conn.execute(text("SELECT * FROM users"))}
        after = {r.username: dict(r._mapping) for r in conn.execute(select(users))}
        assert compare_metadata(_context(conn), metadata) == []
    assert set(after) == set(before)
    for name, old in before.items():  # every column that existed keeps its value, as stored
        assert {k: raw[name][k] for k in old} == old, name
    disabled = {n for n, r in after.items() if r["disabled_by_sync"]}
    assert disabled == {"u0", "u10", "u20", "u30"}
    for name, row in after.items():
        assert row["sync_protected"] is False
        if name in disabled:
            left = row["left_at"] if row["left_at"].tzinfo else row["left_at"].replace(tzinfo=UTC)
            assert started <= left <= datetime.now(UTC) + timedelta(seconds=5)
        else:
            assert row["left_at"] is None
    engine.dispose()


@pytest.mark.airflow
def test_a_sync_refuses_a_database_behind_at_check_source_naming_the_command(airflow_env, slapd, tmp_path, capsys):
    from tests.support.rules import ad_rules
    from usersync_airflow.cli.db import main as usersync_db

    url = f"sqlite:///{tmp_path / 'users.db'}"
    engine = create_engine(url)
    _first_landed_schema().create_schema(engine)
    airflow_env.connection("corp_ldap", **slapd.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed"
    check = dr.get_task_instance("check_source")
    assert check.state == "failed"
    assert not [ti for ti in dr.get_task_instances() if ti.task_id in ("extract", "apply") and ti.state == "success"]
    error = check.xcom_pull(task_ids="check_source", key="usersync_error")
    assert "older usersync" in error["error"] and "run: usersync-db upgrade usersync_target" in error["error"]

    assert usersync_db(["upgrade", "usersync_target"]) == 0
    assert f"(unversioned) -> {head()}" in capsys.readouterr().out
    assert airflow_env.run("user_sync__corp").state == "success"
    engine.dispose()


def test_workers_finding_one_empty_database_at_once_create_it_once(postgres):
    """The first runs of several sources start together: every worker sees the empty database, one creates it."""
    import threading
    import time

    failures = []
    for attempt in range(3):
        url = postgres.create_database(f"race{attempt}")
        engines = [create_engine(url) for _ in range(10)]
        start = threading.Barrier(len(engines))

        def check(engine, delay):
            start.wait()  # noqa: B023 - the barrier outlives the loop on purpose
            time.sleep(delay)  # spread over the first creator's migration: some look while it is half done
            try:
                ensure_schema(engine)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

        threads = [threading.Thread(target=check, args=(e, i * 0.03)) for i, e in enumerate(engines)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert schema_version.current(engines[0]) == head()
        for engine in engines:
            engine.dispose()
    assert failures == []
