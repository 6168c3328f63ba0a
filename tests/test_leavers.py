"""Leavers end to end through the DAG (``dag.test()`` on a real slapd, SQLite and PostgreSQL): the grace period
(disabled at once, deleted after ``delete_after_days``, re-enabled as it was when back in time), protected users
(``protect:`` rules and the ``sync_protected`` column), the mass-delete guard on deletions at the end of the grace,
and "keep as a local user" from a single-account run and from ``usersync-db detach``. The users table is
compared whole before and after each run: exactly the expected rows and columns change.

Runs are dated (``run_after``) as daily runs would be, so 30 days pass in a test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow
DAY0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DAG = "user_sync__corp"
#: what disabling a leaver writes, and what a return or a detach writes back
DISABLED = {"enabled", "disabled_by_sync", "left_at", "updated_at"}
LOCAL = {"ad_username", "domain", "source", "updated_at"}


def day(n: int, hours: int = 0) -> datetime:
    return DAY0 + timedelta(days=n, hours=hours)


def utc(value: datetime | None) -> datetime | None:
    """A timestamp as read back (SQLite: naive UTC; PostgreSQL: aware) as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rules(**safety) -> dict:
    data = ad_rules()
    data["safety"] = {"deletion": "disable", "delete_after_days": 30, **safety}
    data["protect"] = [{"field": "department", "in": ["Board"]},
                       {"field": "extension", "range": [9000, 9099], "reason": "emergency extensions"}]
    return data


@pytest.fixture
def corp(airflow_env, make_slapd, users_url):
    ldap = make_slapd(users=20)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(users_url)
    airflow_env.rules(rules())

    class Corp:
        pass

    c = Corp()
    c.ldap, c.url, c.env = ldap, users_url, airflow_env
    c.run = lambda when, **conf: airflow_env.run(DAG, conf, run_after=when)
    c.rows = lambda: all_rows(users_url)
    c.by_name = lambda: {r["username"]: r for r in all_rows(users_url).values()}
    return c


def _set(url: str, username: str, **values) -> None:
    """What the application (or an admin) writes on a user: its own data, or the sync_protected flag."""
    from sqlalchemy import create_engine, update

    from usersync.core.users_table import users

    engine = create_engine(url)
    with engine.begin() as conn:
        assert conn.execute(update(users).where(users.c.username == username).values(**values)).rowcount == 1
    engine.dispose()


def _report_file(dag_run) -> str:
    """The report in the run folder (a failed run's report task returns none to XCom)."""
    from usersync_airflow.dag.run_storage import run_folder

    return (run_folder(DAG, dag_run.run_id).path / "report.txt").read_text()


def _summary(dag_run) -> dict:
    from usersync.run.summaries import read_summary
    from usersync_airflow.dag.run_storage import run_folder

    return read_summary(run_folder(DAG, dag_run.run_id).path)


def test_leavers_wait_out_the_grace_protected_users_stay_and_a_returning_account_keeps_its_user(corp):
    corp.ldap.modify_user(9, department="Board")
    corp.ldap.modify_user(10, **{"msRTCSIP-PrimaryUserAddress": "sip:9050@example.test"})
    assert corp.run(day(0)).state == "success"
    _set(corp.url, "user000006", personal_address="Room 6", voicemail_enabled=True, call_recording_license=True)
    _set(corp.url, "user000008", sync_protected=True)
    ids = {name: row["id"] for name, row in corp.by_name().items()}

    # day 1: five accounts leave; two are disabled, three are protected and held
    before = corp.rows()
    for i in (6, 7, 8, 9, 10):
        corp.ldap.delete_user(i)
    dr = corp.run(day(1))
    assert dr.state == "success"
    after = corp.rows()
    changes = changed_rows(before, after)
    assert set(changes) == {ids["user000006"], ids["user000007"]}
    for row_id in changes:
        assert set(changes[row_id]) == DISABLED
        assert after[row_id]["enabled"] is False and after[row_id]["disabled_by_sync"] is True
        assert utc(after[row_id]["left_at"]) == day(1)
    report = report_of(dr)
    assert "disabled 2" in report and "pending 2" in report and "protected 3" in report
    assert ("… user000006 (EXAMPLE\\user000006): gone since 2026-03-03 02:00 UTC, deleted on 2026-04-02 02:00 UTC"
            in report)
    assert "= user000008 (EXAMPLE\\user000008): protected: sync_protected is set" in report
    assert "= user000009 (EXAMPLE\\user000009): protected: department in [Board]" in report
    assert "= user000010 (EXAMPLE\\user000010): protected: emergency extensions" in report
    counts = _summary(dr)["counts"]
    assert (counts["disabled"], counts["pending"], counts["protected"], counts["deleted"]) == (2, 2, 3, 0)

    # day 15: user 6 is back (same objectGUID): re-enabled, same row, the application's data intact
    before = after
    corp.ldap.add_user(6)
    dr = corp.run(day(15))
    assert dr.state == "success"
    after = corp.rows()
    changes = changed_rows(before, after)
    assert set(changes) == {ids["user000006"]} and set(changes[ids["user000006"]]) == DISABLED
    back = after[ids["user000006"]]
    assert back["enabled"] is True and back["disabled_by_sync"] is False and back["left_at"] is None
    assert (back["personal_address"], back["voicemail_enabled"], back["call_recording_license"]) == ("Room 6", True, True)
    report = report_of(dr)
    assert "↺ user000006 (EXAMPLE\\user000006): returned after 14 day(s)" in report
    assert _summary(dr)["counts"]["returned"] == 1

    # an hour before user 7's grace ends: nothing is written, though nothing changed in the directory
    before = after
    dr = corp.run(day(31, hours=-1))
    assert dr.state == "success" and changed_rows(before, corp.rows()) == {}
    assert "… user000007 (EXAMPLE\\user000007): gone since 2026-03-03 02:00 UTC" in report_of(dr)

    # day 31: 30 days gone — user 7 is deleted; the protected users stay as they were
    dr = corp.run(day(31))
    assert dr.state == "success"
    after = corp.rows()
    changes = changed_rows(before, after)
    assert set(changes) == {ids["user000007"]} and ids["user000007"] not in after
    report = report_of(dr)
    assert "deleted 1" in report and "1 user(s) deleted: gone 30 day(s) or more" in report
    assert "- delete user000007 (EXAMPLE\\user000007)" in report
    for name in ("user000008", "user000009", "user000010"):
        row = after[ids[name]]
        assert row["enabled"] is True and row["disabled_by_sync"] is False and row["left_at"] is None


def test_deletions_at_the_end_of_the_grace_are_guarded_like_any_deletion(corp):
    corp.env.rules(rules(approve_blocked_runs=False))
    assert corp.run(day(0)).state == "success"
    for i in range(5):  # 5 of 20 = 25% > 20%
        corp.ldap.delete_user(i)
    before = corp.rows()
    assert corp.run(day(1)).state == "failed"  # the disables are blocked first
    assert changed_rows(before, corp.rows()) == {}
    assert corp.run(day(1, hours=1), allow_mass_delete=True).state == "success"
    disabled = corp.rows()
    assert sum(r["disabled_by_sync"] for r in disabled.values()) == 5

    dr = corp.run(day(31, hours=1))  # the grace is over for all five: five deletions, again over the limits
    assert dr.state == "failed"
    assert changed_rows(disabled, corp.rows()) == {}
    assert "BLOCKED by the mass-delete guard: 5 of the 20 users" in _report_file(dr)
    dr = corp.run(day(31, hours=2), allow_mass_delete=True)
    assert dr.state == "success"
    assert {row_id for row_id, change in changed_rows(disabled, corp.rows()).items()} == \
        {r["id"] for r in disabled.values() if r["disabled_by_sync"]}
    assert len(corp.rows()) == 15


def test_keep_as_local_from_a_single_account_run_and_from_the_command_line(corp, capsys):
    from usersync.run.summaries import recent_runs
    from usersync_airflow.cli.db import main as usersync_db
    from usersync_airflow.dag.run_storage import runs_base

    assert corp.run(day(0)).state == "success"
    for i in (3, 4, 5):
        _set(corp.url, f"user{i:06d}", personal_address=f"Room {i}", voicemail_enabled=True)
        corp.ldap.delete_user(i)
    assert corp.run(day(1)).state == "success"  # three leavers, disabled and pending deletion
    ids = {name: row["id"] for name, row in corp.by_name().items()}

    before = corp.rows()
    dr = corp.run(day(2), account="user000003", keep_as_local=True)
    assert dr.state == "success"
    after = corp.rows()
    changes = changed_rows(before, after)
    assert set(changes) == {ids["user000003"]}
    assert set(changes[ids["user000003"]]) == LOCAL | {"disabled_by_sync", "left_at"}
    local = after[ids["user000003"]]
    assert (local["ad_username"], local["domain"], local["source"]) == (None, None, None)
    assert (local["personal_address"], local["voicemail_enabled"], local["enabled"]) == ("Room 3", True, False)
    report = report_of(dr)
    assert "→ user000003 (EXAMPLE\\user000003): kept as a local user: trigger parameter keep_as_local" in report
    assert _summary(dr)["counts"]["detached"] == 1

    before = after
    assert usersync_db(["detach", "user000004", "EXAMPLE\\user000005", "--by", "alice"]) == 0
    printed = capsys.readouterr().out
    assert "user000004 (EXAMPLE\\user000004): detached from source corp; now a local user" in printed
    after = corp.rows()
    changes = changed_rows(before, after)
    assert set(changes) == {ids["user000004"], ids["user000005"]}
    assert all(set(c) == LOCAL | {"disabled_by_sync", "left_at"} for c in changes.values())
    assert after[ids["user000005"]]["personal_address"] == "Room 5"
    record = [r for r in recent_runs(runs_base(), days=10_000)[DAG] if r.get("kind") == "detach"][-1]  # this one
    assert record["counts"]["detached"] == 2 and record["status"] == "SUCCESS"
    text = (runs_base() / DAG / record["folder"] / "report.txt").read_text()
    assert "kept as a local user: usersync-db detach, asked by alice" in text and "→ user000005" in text
    assert usersync_db(["detach", "nobody-like-this"]) == 2  # an unknown name: nothing written
    assert changed_rows(after, corp.rows()) == {}

    # long after the grace: local users are nobody's to delete
    before = corp.rows()
    assert corp.run(day(60)).state == "success"
    assert changed_rows(before, corp.rows()) == {}
