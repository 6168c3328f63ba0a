"""Quarantine through the DAG (real slapd, real SMTP, the users table on SQLite and PostgreSQL): a source that fails
night after night says so once, its scheduled runs back off, and a manual run after the fix — or an admin's
release — ends it. Runs are dated as the schedule would date them (``run_after``) and recorded as scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from tests.support.helpers import table_rows
from tests.support.mail import smtp_connection
from tests.support.rules import ad_rules
from usersync.plan.health import (
    CREDENTIALS,
    QUARANTINED,
    UNREACHABLE,
    Health,
    after_failure,
    skip_reason,
)
from usersync.store import source_health

pytestmark = pytest.mark.airflow

DAG = "user_sync__corp"
NIGHT = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _alarms(smtp) -> list[str]:
    return [m["Subject"] for m in smtp.messages]


def test_a_wrong_password_alarms_once_backs_off_and_a_manual_run_after_the_fix_ends_the_quarantine(
        airflow_env, make_slapd, smtp_server, users_url, tmp_path, monkeypatch):
    ldap = make_slapd(20)
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.connection("corp_ldap", **{**ldap.connection_extra(), "password": "Expired-Passw0rd!"})
    airflow_env.connection("smtp_default", **smtp_connection(smtp_server.port))
    airflow_env.users_db(users_url)
    data = ad_rules()
    data["alarms"] = {"to": ["it-admins@example.test"]}
    airflow_env.rules(data)
    engine = create_engine(users_url)

    def night(n: int):
        return airflow_env.run(DAG, run_after=NIGHT + timedelta(days=n), scheduled=True)

    first = night(0)
    assert first.state == "failed" and first.get_task_instance("check_source").state == "failed"
    assert _alarms(smtp_server) == ["[usersync] ALARM: corp quarantined, failed at step check_source"]
    health = source_health.load(engine, "corp")
    assert health is not None
    assert (health["state"], health["failures"], health["failure_kind"]) == (QUARANTINED, 1, CREDENTIALS)
    assert health["next_try_at"] == NIGHT + timedelta(days=2)
    assert "SourceAuthError" in health["reason"] and "Expired-Passw0rd!" not in health["reason"]

    skipped = night(1)  # before the next try: the source is not touched, nobody is mailed
    assert skipped.state == "success" and skipped.get_task_instance("check_source").state == "skipped"
    assert skipped.get_task_instance("apply").state == "skipped"
    report = skipped.get_task_instance("report").xcom_pull(task_ids="report")
    assert "status:   SKIPPED (QUARANTINED)" in report
    assert "to end it: correct the password or certificate in the source's Airflow connection" in report
    assert f"next scheduled try: {(NIGHT + timedelta(days=2)).isoformat(timespec='minutes')}" in report

    tried = night(2)  # the next try fails the same way: no second alarm, the back-off grows
    assert tried.state == "failed"
    assert len(smtp_server.messages) == 1
    health = source_health.load(engine, "corp")
    assert health["failures"] == 2 and health["next_try_at"] == NIGHT + timedelta(days=6)
    assert night(3).get_task_instance("check_source").state == "skipped"
    assert table_rows(users_url) == {}

    airflow_env.connection("corp_ldap", **ldap.connection_extra())  # the password corrected
    manual = airflow_env.run(DAG, run_after=NIGHT + timedelta(days=3, hours=9))  # an admin's run always tries
    assert manual.state == "success"
    rows = table_rows(users_url)
    assert sorted(rows) == [f"user{i:06d}" for i in range(20)]
    health = source_health.load(engine, "corp")
    assert (health["state"], health["failures"], health["next_try_at"], health["reason"]) == ("ok", 0, None, None)
    assert night(4).state == "success" and table_rows(users_url) == rows  # the schedule runs again
    assert len(smtp_server.messages) == 1
    engine.dispose()


def test_a_release_ends_the_quarantine_so_the_next_scheduled_run_tries(users_url):
    engine = create_engine(users_url)
    now = NIGHT
    failed = source_health.record_failure(engine, "corp", "SourceAuthError", "invalid credentials", NIGHT, "r1", now)
    assert failed.alarm == "entered quarantine"
    assert skip_reason(source_health.health_of(source_health.load(engine, "corp")), True, NIGHT + timedelta(days=1))
    assert source_health.release(engine, "corp", "alice", now + timedelta(hours=1))
    row = source_health.load(engine, "corp")
    assert (row["state"], row["released_by"], row["failures"]) == ("ok", "alice", 0)
    assert skip_reason(source_health.health_of(row), True, NIGHT + timedelta(days=1)) is None
    assert not source_health.release(engine, "corp", "alice", now)  # not in quarantine: nothing to release
    engine.dispose()


def test_timeouts_quarantine_after_three_runs_alarming_on_the_first_on_entering_and_when_the_reason_changes():
    h, alarms = Health(), []
    for n in range(4):
        failed = after_failure(h, "SourceUnreachable", "timed out", NIGHT + timedelta(days=n), f"r{n}")
        h = failed.health
        alarms.append(failed.alarm)
        if n == 1:
            assert h.state == "failing" and h.next_try_at is None
    assert alarms == ["first failure", None, "entered quarantine", None]
    assert h.state == QUARANTINED and h.failure_kind == UNREACHABLE and h.failures == 4
    assert h.next_try_at == NIGHT + timedelta(days=3 + 4)  # the second failure in quarantine: 4 days
    changed = after_failure(h, "SourceUnreachable", "connection refused", NIGHT + timedelta(days=7), "r7")
    assert changed.alarm == "reason changed" and changed.health.next_try_at == NIGHT + timedelta(days=14)
    assert skip_reason(h, scheduled=False, due=NIGHT + timedelta(days=4)) is None  # a manual run always tries


def test_an_account_with_bad_data_is_reported_in_full_once_then_parked_and_back_when_its_data_changes(
        airflow_env, make_slapd, users_url, tmp_path, monkeypatch):
    """Bad data never quarantines the source, only the user: listed the first run, parked the second (listed
    once as parked), then only counted; new data — bad in another way, or fixed — brings it back."""
    from tests.support.helpers import report_of

    ldap = make_slapd(20)
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(users_url)
    airflow_env.rules(ad_rules())
    ldap.modify_user(3, mail="broken")
    account = "cn=Giulia Smith 3,cn=Users,dc=example,dc=test"

    def run() -> str:
        dr = airflow_env.run(DAG)
        assert dr.state == "success"
        return report_of(dr)

    first = run()
    assert "status:   COMPLETED WITH WARNINGS" in first and "WARNING: 1 account(s) skipped" in first
    assert f"skipped accounts (fix them in the source, then run again):\n! {account}: email" in first
    second = run()
    assert "WARNING: 1 account(s) parked: skipped for the same bad data 2 runs in a row" in second
    assert f"parked accounts (the same bad data 2 runs in a row; from now on only counted until their data " \
           f"changes):\n! {account}: email" in second and "skipped accounts (fix" not in second
    third = run()
    assert "status:   SUCCESS" in third and account not in third  # no warning, no mail, no line: a count
    assert "parked 1" in third and "parked earlier and still skipped: 1 account(s)" in third
    assert "user000003" not in table_rows(users_url) and len(table_rows(users_url)) == 19
    assert source_health.load(create_engine(users_url), "corp")["state"] == "ok"  # the source is healthy

    ldap.modify_user(3, mail="still broken")  # other data: reported in full again
    assert f"skipped accounts (fix them in the source, then run again):\n! {account}: email" in run()
    ldap.modify_user(3, mail="giulia.smith.3@example.test")
    fixed = run()
    assert "skipped" not in fixed.split("statistics:")[1].split("\n")[0] or "skipped 0" in fixed
    rows = table_rows(users_url)
    assert sorted(rows) == [f"user{i:06d}" for i in range(20)]
    assert rows["user000003"]["email"] == "giulia.smith.3@example.test"
