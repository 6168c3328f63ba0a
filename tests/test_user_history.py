"""The per-user log through the DAG (``dag.test()``) on SQLite and PostgreSQL: a story over several runs — inserts,
a rename, updates, a number clash, a leaver disabled then deleted, a detach, a run let through the mass-delete
guard — whose history per user is exactly what happened; every run's records are exactly the users table's
changes; a no-op run adds no record; undo of a run, dry and live, compared with the whole table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select

from tests.support.helpers import all_rows, changed_rows
from tests.support.rules import ad_rules
from usersync.core.users_table import user_events
from usersync.store.history import all_events as every_event
from usersync.store.history import normal, replay, run_events, timeline

pytestmark = pytest.mark.airflow
DAG = "user_sync__corp"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def story(request, airflow_env, make_slapd, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    ldap = make_slapd(users=12)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    data = ad_rules()
    data["safety"] = {"deletion": "disable", "delete_after_days": 2, "max_delete_percent": 20,
                      "approve_blocked_runs": False}  # dag.test() cannot answer an approval: blocked runs fail
    data["fields"]["extension"]["on_clash"] = "skip"  # the story's number clash is a skip, logged run after run
    airflow_env.rules(data)
    engine = create_engine(url)
    yield airflow_env, ldap, url, engine
    engine.dispose()


def _records(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(user_events)).scalar_one()


def _logged_changes(engine, run_id: str) -> dict[int, dict[str, tuple]]:
    """What the log says a run changed, in ``changed_rows``' shape (an insert or delete: every column)."""
    out: dict[int, dict[str, tuple]] = {}
    for e in run_events(engine, "corp", run_id):
        if e.action in ("inserted", "deleted"):
            row = {c: v for c, v in e.detail["row"].items() if c != "created_at"}
            out[e.user_id] = {c: ((None, v) if e.action == "inserted" else (v, None)) for c, v in row.items()}
        elif "changes" in e.detail:
            out[e.user_id] = {c: tuple(v) for c, v in e.detail["changes"].items()}
    return {id_: kept for id_, cols in out.items() if (kept := {c: v for c, v in cols.items() if v[0] != v[1]})}


def _table_changes(before, after) -> dict[int, dict[str, tuple]]:
    """The whole table's changes between two snapshots, bookkeeping aside, values normalised like the log's."""
    out = {}
    for id_, cols in changed_rows(before, after).items():
        kept = {c: (normal(c, o), normal(c, n)) for c, (o, n) in cols.items()
                if c not in ("id", "created_at", "updated_at")}
        kept = {c: v for c, v in kept.items() if v[0] != v[1]}
        if kept:
            out[id_] = kept
    return out


def _run(env, url, engine, at, **conf):
    before = all_rows(url)
    dr = env.run(DAG, conf, run_after=at)
    after = all_rows(url)
    assert _table_changes(before, after) == _logged_changes(engine, dr.run_id), dr.run_id
    return dr, after


def test_a_story_over_several_runs_is_each_users_history_and_an_undo_puts_a_run_back(story):
    env, ldap, url, engine = story
    first, _ = _run(env, url, engine, T0)
    assert first.get_state() == "success"
    ldap.modify_user(1, sAMAccountName="anna.renamed")  # a rename (same objectGUID)
    ldap.modify_user(2, department="Board")
    ldap.modify_user(3, **{"msRTCSIP-PrimaryUserAddress": "sip:10004@example.test"})  # user 4's number: a clash
    ldap.delete_user(5)  # a leaver: disabled, deleted after two days
    second, before_undo = _run(env, url, engine, T0 + timedelta(days=1))
    third, _ = _run(env, url, engine, T0 + timedelta(days=2))  # the clash again: the same record, seen twice
    fourth, _ = _run(env, url, engine, T0 + timedelta(days=3))  # user 5 gone two days: deleted
    detach, _ = _run(env, url, engine, T0 + timedelta(days=3, hours=1), account="user000006", keep_as_local=True)
    for i in (7, 8, 9):  # 3 of the 10 still synced: over 20 %, blocked until let through
        ldap.delete_user(i)
    blocked = env.run(DAG, {}, run_after=T0 + timedelta(days=4))
    assert blocked.get_state() == "failed" and not run_events(engine, "corp", blocked.run_id)
    let_through, _ = _run(env, url, engine, T0 + timedelta(days=4, hours=1), allow_mass_delete=True)
    count = _records(engine)
    noop, _ = _run(env, url, engine, T0 + timedelta(days=5))
    assert _records(engine) == count  # nothing new: the clash's record only counts one more run

    def history(query):
        return [(e.run_id, e.action, e.detail.get("changes")) for e in timeline(engine, query)]

    assert [h[:2] for h in history("anna.renamed")] == [(first.run_id, "inserted"), (second.run_id, "updated")]
    assert history("EXAMPLE\\user000001")[1][2]["username"] == ["user000001", "anna.renamed"]
    assert [h[:2] for h in history("user000002")] == [(first.run_id, "inserted"), (second.run_id, "updated")]
    assert history("user000002")[1][2] == {"department": [history("user000002")[0][2] or "x", "Board"]} or \
        history("user000002")[1][2]["department"][1] == "Board"
    clash = [e for e in timeline(engine, "user000003") if e.action == "skipped"]
    assert [(e.run_id, e.last_run_id, e.seen, e.code) for e in clash] == [
        (second.run_id, noop.run_id, 5, "number_taken")]  # five whole-source runs made it
    assert "10004" in clash[0].detail["reason"] and "user000004" in clash[0].detail["reason"]
    five = timeline(engine, "user000005")
    assert [(e.run_id, e.action) for e in five] == [(first.run_id, "inserted"), (second.run_id, "disabled"),
                                                    (fourth.run_id, "deleted")]
    assert five[1].detail["changes"]["enabled"] == [True, False]
    assert five[2].detail["row"]["username"] == "user000005" and five[2].detail["row"]["enabled"] is False
    six = timeline(engine, "user000006")
    # a local user now: each whole-source run since skips the account (one record, however many runs)
    assert [(e.run_id, e.action) for e in six] == [(first.run_id, "inserted"), (detach.run_id, "detached"),
                                                   (let_through.run_id, "skipped")]
    assert six[2].seen == 2 and six[2].last_run_id == noop.run_id
    assert six[1].detail["changes"]["source"] == ["corp", None] and "keep_as_local" in six[1].detail["reason"]
    seven = timeline(engine, "user000007")
    assert [(e.run_id, e.action) for e in seven] == [(first.run_id, "inserted"), (let_through.run_id, "disabled")]
    assert seven[1].approved_by == "allow_mass_delete, set by dag_test"  # dag.test() names the host as its user
    assert all(e.rules_hash and len(e.rules_hash) == 64 for e in every_event(engine))
    owned = {id_: {c: normal(c, v) for c, v in row.items() if c not in ("id", "updated_at")}
             for id_, row in all_rows(url).items() if row["source"]}
    assert {i: {c: normal(c, v) for c, v in r.items()} for i, r in replay(every_event(engine)).items()} == owned

    # undo the second run: a dry undo writes nothing; the live one puts back every user nobody changed since
    table = all_rows(url)
    dry = env.run(DAG, {"undo_run": second.run_id, "dry_run": True}, run_after=T0 + timedelta(days=6))
    assert dry.get_state() == "success" and all_rows(url) == table
    report = dry.get_task_instance("report").xcom_pull(task_ids="report")
    assert f"undo of run {second.run_id}" in report and "not reverted" in report
    undo, after = _run(env, url, engine, T0 + timedelta(days=6, hours=1), undo_run=second.run_id)
    assert undo.get_state() == "success"
    report = undo.get_task_instance("report").xcom_pull(task_ids="report")
    assert "user000005: written again since" in report  # deleted by the fourth run: left as it is
    expected = dict(table)
    for id_, row in before_undo.items():
        if row["username"] in ("anna.renamed", "user000002"):
            expected[id_] = {**all_rows(url)[id_]} | {c: v for c, v in _first_values(engine, first.run_id, id_).items()}
    strip = lambda rows: {i: {c: normal(c, v) for c, v in r.items() if c != "updated_at"} for i, r in rows.items()}  # noqa: E731
    assert strip(after) == strip(expected)
    assert after[_id_of(table, "anna.renamed")]["username"] == "user000001"
    assert after[_id_of(table, "user000002")]["department"] != "Board"


def _id_of(rows, username):
    return next(i for i, r in rows.items() if r["username"] == username)


def _first_values(engine, run_id, user_id):
    """The values the first run inserted for a user (what the undone updates put back)."""
    (e,) = [e for e in run_events(engine, "corp", run_id) if e.user_id == user_id]
    return {c: v for c, v in e.detail["row"].items() if c not in ("created_at",)}
