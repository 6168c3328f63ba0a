"""Safe runs end to end through Airflow: dry run, mass-delete guard, deletion policies, reports, e-mail."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import pytest

from devtools.ad_data import EMPTY_OU_DN
from devtools.netutil import free_port
from tests.support.helpers import table_rows
from tests.support.mail import smtp_connection
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow
ADMINS = ["it-admins@example.test"]


@pytest.fixture
def setup(airflow_env, make_slapd, smtp_server, tmp_path, monkeypatch):
    """A 20-user directory, an SQLite users DB, an SMTP server, reports under tmp_path/reports."""
    ldap = make_slapd(users=20)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.connection("smtp_default", **smtp_connection(smtp_server.port))
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))

    class Setup:
        pass

    s = Setup()
    s.ldap, s.url, s.smtp, s.env, s.db_file, s.reports = ldap, url, smtp_server, airflow_env, tmp_path / "users.db", tmp_path / "reports"
    s.rules = lambda **kw: airflow_env.rules(_rules(**kw))
    s.run = lambda **conf: airflow_env.run("user_sync__corp", conf)
    return s


def _rules(safety=None, alarms=None, **source):
    data = ad_rules(**source)
    data["alarms"] = {"to": ADMINS, **(alarms or {})}
    if safety:
        data["safety"] = safety
    return data


def _report(dr) -> str:
    return dr.get_task_instance("report").xcom_pull(task_ids="report")


def _report_file(s) -> str:
    (path,) = sorted((s.reports / "corp").glob("*.txt"))[-1:]
    return path.read_text()


def _body(message) -> str:
    return html.unescape(message.get_body(("html", "plain")).get_content())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dry_run_writes_nothing_and_reports_the_full_change_set(setup):
    setup.rules()
    assert setup.run().state == "success"
    setup.ldap.add_user(50)
    setup.ldap.modify_user(3, department="Board")
    setup.ldap.delete_user(4)
    before = _sha(setup.db_file)
    dr = setup.run(dry_run=True)
    assert dr.state == "success"
    assert _sha(setup.db_file) == before  # byte-for-byte unchanged
    text = _report(dr)
    assert "mode:     DRY RUN (nothing written)" in text
    assert "statistics (planned, dry run): read 20, inserted 1, updated 1, deleted 1" in text
    assert "+ insert user000050" in text and "~ update user000003: department:" in text
    assert "- delete user000004" in text
    assert _report_file(setup) == text


@pytest.mark.parametrize("case", ["empty_subtree", "wrong_object_path"])
def test_an_empty_or_failed_extract_is_a_failed_run_with_an_alarm(setup, case):
    setup.rules()
    assert setup.run().state == "success"
    before = table_rows(setup.url)
    setup.smtp.messages.clear()
    object_path = EMPTY_OU_DN if case == "empty_subtree" else "OU=Gone,DC=example,DC=test"
    setup.rules(object_path=object_path)
    dr = setup.run()
    assert dr.state == "failed"
    assert table_rows(setup.url) == before
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] ALARM: corp failed at step extract"
    assert mail["To"] == ADMINS[0]
    body = _body(mail)
    expected = "returned no users" if case == "empty_subtree" else "does not exist"
    assert expected in body and "failed at step: extract" in body


def test_removing_60_percent_is_blocked_then_allowed_once(setup):
    """With approvals turned off, a blocked run fails at once (approvals: tests/test_distributed.py)."""
    setup.rules(safety={"approve_blocked_runs": False})
    assert setup.run().state == "success"
    before = table_rows(setup.url)
    for i in range(12):
        setup.ldap.delete_user(i)
    setup.ldap.add_user(77)
    setup.smtp.messages.clear()

    dr = setup.run()
    assert dr.state == "failed"
    assert table_rows(setup.url) == before  # not even the insert was applied
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] ALARM: corp blocked by the mass-delete guard"
    body = _body(mail)
    assert "12 of the 20 users this source owns would be removed (60.0%" in body
    assert "allow_mass_delete" in body and "blocked 13" in body

    dr = setup.run(allow_mass_delete=True)
    assert dr.state == "success"
    after = table_rows(setup.url)
    assert len(after) == 20 - 12 + 1 and "user000077" in after
    assert "overridden" in _report(dr)

    for i in range(12, 20):  # the next run is guarded again: removing all the rest (8 of 9) is blocked
        setup.ldap.delete_user(i)
    assert setup.run().state == "failed"


def test_a_small_deletion_passes_the_guard(setup):
    setup.rules()
    assert setup.run().state == "success"
    setup.ldap.delete_user(5)
    dr = setup.run()
    assert dr.state == "success"
    assert "user000005" not in table_rows(setup.url)
    assert "mass-delete guard passed: 1 of the 20 users" in _report(dr)


def test_deletion_policy_disable_then_reenable_end_to_end(setup):
    setup.rules(safety={"deletion": "disable"})
    assert setup.run().state == "success"
    setup.ldap.delete_user(6)
    assert setup.run().state == "success"
    row = table_rows(setup.url)["user000006"]
    assert row["enabled"] is False and row["disabled_by_sync"] is True
    setup.ldap.add_user(6)
    dr = setup.run()
    assert dr.state == "success"
    row = table_rows(setup.url)["user000006"]
    assert row["enabled"] is True and row["disabled_by_sync"] is False


def test_deletion_policy_keep_end_to_end(setup):
    setup.rules(safety={"deletion": "keep"})
    assert setup.run().state == "success"
    setup.ldap.delete_user(6)
    dr = setup.run()
    assert dr.state == "success" and "user000006" in table_rows(setup.url)
    assert "kept: 1 user(s) no longer in the source stay" in _report(dr)


def test_skipped_users_send_a_warning_mail_and_a_clean_run_sends_none(setup):
    setup.rules()
    assert setup.run().state == "success"
    assert setup.smtp.messages == []  # clean run: no mail
    setup.ldap.modify_user(2, mail="broken-address")
    dr = setup.run()
    assert dr.state == "success"
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] WARNING: corp completed with warnings"
    body = _body(mail)
    assert "email: not an e-mail address: 'broken-address'" in body and "status:   COMPLETED WITH WARNINGS" in body


def test_notify_on_success_sends_a_success_mail(setup):
    setup.rules(alarms={"notify_on_success": True})
    assert setup.run().state == "success"
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] corp: sync completed"
    assert "inserted 20" in _body(mail)


@pytest.mark.faults
def test_smtp_down_is_logged_and_does_not_fail_the_sync(setup, capfd, caplog):
    setup.env.connection("smtp_default", **smtp_connection(free_port()))
    setup.rules(alarms={"notify_on_success": True})
    dr = setup.run()
    assert dr.state == "success"
    assert len(table_rows(setup.url)) == 20
    logged = capfd.readouterr().out + caplog.text
    assert "could not send the success mail through connection 'smtp_default'" in logged


def test_an_unexpected_error_is_reported_with_the_step_and_debug_information(setup, postgres):
    # the users database refuses connections: check_source (which checks its schema version first) fails
    # with a driver error, before anything is read from the directory
    setup.env.connection("usersync_target", conn_type="postgres", host="127.0.0.1", port=free_port(),
                         login="users", password="Db-Secret-Pw-9", schema="users")
    setup.rules()
    dr = setup.run()
    assert dr.state == "failed"
    text = _report_file(setup)
    assert "status:   FAILED" in text and "failed at step: check_source" in text
    assert "error: OperationalError" in text and "Traceback (most recent call last)" in text
    assert "Db-Secret-Pw-9" not in text
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] ALARM: corp failed at step check_source"


def test_no_secret_in_logs_reports_or_mails(setup, capfd, caplog):
    setup.env.connection("corp_ldap", **{**setup.ldap.connection_extra(), "password": "Wrong-Bind-Secret-5"})
    setup.rules(alarms={"notify_on_success": True})
    dr = setup.run()
    assert dr.state == "failed"
    setup.env.connection("corp_ldap", **setup.ldap.connection_extra())
    setup.ldap.modify_user(1, mail="bad")
    assert setup.run().state == "success"
    out = capfd.readouterr()
    reports = "".join(p.read_text() for p in (setup.reports / "corp").glob("*.txt"))
    mails = "".join(m.as_string() + _body(m) for m in setup.smtp.messages)
    everything = out.out + out.err + caplog.text + reports + mails
    assert "invalid credentials" in everything and len(setup.smtp.messages) == 2
    for secret in ("Wrong-Bind-Secret-5", setup.ldap.service_password, "Smtp-Secret-77"):
        assert secret not in everything


def test_fallback_to_plain_ldap_completes_with_a_warning_mail(setup, tmp_path):
    from devtools.netutil import free_port

    closed = free_port()  # no secure port answers: the one case SecureThenUnsecure falls back in
    setup.env.connection("corp_ldap", **setup.ldap.connection_extra(security_mode="SecureThenUnsecure",
                                                                    ldaps_port=closed))
    setup.rules()
    dr = setup.run()
    assert dr.state == "success" and len(table_rows(setup.url)) == 20
    (mail,) = setup.smtp.messages
    assert mail["Subject"] == "[usersync] WARNING: corp completed with warnings"
    assert f"used UNENCRYPTED LDAP (ldap://127.0.0.1:{setup.ldap.port})" in _body(mail)


@pytest.mark.bad_input
def test_an_account_with_control_characters_is_refused_and_never_reaches_a_mail_header(setup):
    setup.rules()
    assert setup.run().state == "success"
    before = table_rows(setup.url)
    dr = setup.run(account="user000001\r\nBcc: someone@evil.example")
    assert dr.state == "failed"
    assert table_rows(setup.url) == before
    (mail,) = [m for m in setup.smtp.messages if "ALARM" in m["Subject"]]
    assert "\r" not in mail["Subject"] and "\n" not in mail["Subject"] and mail["Bcc"] is None
    assert "user000001\\r\\nBcc" in mail["Subject"]
    assert "holds a control character" in _body(mail) and "nothing was read or written" in _body(mail)


def test_a_removal_count_zeroed_in_xcom_does_not_lift_the_guard(setup, monkeypatch):
    """apply checks the guard again on the tables it loads and the users this source owns in the table, never on
    the counts handed over in XCom: one who may write XCom cannot lift it."""
    from usersync_airflow.dag import xcom

    setup.rules(safety={"approve_blocked_runs": False})
    assert setup.run().state == "success"
    before = table_rows(setup.url)
    for i in range(12):  # 60 %
        setup.ldap.delete_user(i)
    handed_over = xcom.plan_ref

    def zeroed(ti):
        ref = handed_over(ti)
        if ref and ti.task_id == "apply":
            return {**ref, "removals": 0, "owned": 1_000_000, "counts": {**ref["counts"], "deleted": 0}}
        return ref

    monkeypatch.setattr(xcom, "plan_ref", zeroed)
    dr = setup.run()
    assert dr.state == "failed"
    assert table_rows(setup.url) == before
    assert "BLOCKED by the mass-delete guard: 12 of the 20 users" in _report_file(setup)
