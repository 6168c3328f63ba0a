"""One account on demand, through the DAG: the run reads only that account, writes at most its user, deletes
nobody, and the report explains each step. Each test compares the whole users table before and after."""

from __future__ import annotations

import pytest

from devtools.ad_data import ad_user, user_dn
from tests.conftest import ad_rules
from tests.support.helpers import all_rows, changed_rows, report_of

pytestmark = pytest.mark.airflow


def _section(report: str, title: str) -> str:
    """The lines of one numbered section of the explanation."""
    lines = report.split(f"\n{title}:\n", 1)[1].split("\n")
    return "\n".join(line for line in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("   "))])


@pytest.fixture
def corp(airflow_env, make_slapd, tmp_path):
    """slapd with 20 users, synced once into SQLite; the test then changes the directory and asks for one."""
    ldap = make_slapd(users=20)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    assert airflow_env.run("user_sync__corp").state == "success"
    return ldap, url


def test_one_account_updates_only_that_user_and_explains_each_step(airflow_env, corp):
    ldap, url = corp
    ldap.modify_user(3, department="Board")
    ldap.modify_user(4, department="Board")  # changed too, but not asked for: stays as it is
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": "user000003"})
    assert dr.state == "success"
    changed = changed_rows(before, all_rows(url))
    (row_id,) = changed
    assert before[row_id]["ad_username"] == "user000003"
    assert changed[row_id]["department"] == (ad_user(3)["department"], "Board")
    assert set(changed[row_id]) == {"department", "updated_at"}

    report = report_of(dr)
    assert "account:  'user000003' — this account only" in report
    read = _section(report, "1. what was read")
    assert "(|(sAMAccountName=user000003)(userPrincipalName=user000003)) from DC=example,DC=test" in read
    assert "1 request(s), 1 entry returned" in read
    assert f"entry: {user_dn(ad_user(3))}".lower() in read.lower() and "department: 'Board'" in read
    scope = _section(report, "2. scope")
    assert "passed: object path" in scope and "passed: filter — the entry matches (objectClass=user)" in scope
    fields = _section(report, "3. fields")
    assert "email: import, mail = " in fields and "→ lower → " in fields
    assert "extension: prefix, msRTCSIP-PrimaryUserAddress = 'sip:10003@example.test' → sip_user → '10003'" in fields
    assert "language: on_insert — not written now: the user exists (it holds 'en')" in fields
    guid = before[row_id]["external_id"]
    assert f"by anchor objectGUID {guid}: user #{row_id} 'user000003'" in _section(report, "4. match")
    assert "free: no other user holds them" in _section(report, "5. claims")
    outcome = _section(report, "6. outcome")
    assert f"department: '{ad_user(3)['department']}' → 'Board'" in outcome and "result: updated" in outcome
    # one entry in the records file, and the delta-free run's extract read no partition but the one
    extract = dr.get_task_instance("extract", map_index=0).xcom_pull(task_ids="extract", map_indexes=0)
    assert extract["records"]["rows"] == 1 and extract["account"] == "user000003"


def test_an_account_that_left_deletes_nobody_and_says_what_a_full_run_would_do(airflow_env, corp):
    ldap, url = corp
    ldap.delete_user(5)
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": "user000005"})
    assert dr.state == "success"
    assert all_rows(url) == before
    report = report_of(dr)
    assert "the source holds no such account" in _section(report, "1. what was read")
    outcome = _section(report, "6. outcome")
    assert "not synced: the account is not in the source; this run deletes nobody" in outcome
    assert "the next full run DELETES this user (safety.deletion: delete)" in outcome
    assert "statistics: read 0, inserted 0, updated 0, deleted 0" in report


def test_out_of_scope_by_the_filter_a_dn_and_a_new_account_in_a_dry_run(airflow_env, corp):
    ldap, url = corp
    narrowed = ad_rules(filter="(&(objectClass=user)(!(sAMAccountName=user000007)))")
    airflow_env.rules({**narrowed, "safety": {"deletion": "disable"}})
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": user_dn(ad_user(7))})
    assert dr.state == "success" and all_rows(url) == before
    report = report_of(dr)
    assert f"the entry at {user_dn(ad_user(7))} (a base search)" in report
    assert "FAILED: filter — the entry does not match (&(objectClass=user)(!(sAMAccountName=user000007)))" in report
    assert "OUT OF SCOPE" in report
    assert "the next full run DISABLES this user (safety.deletion: disable)" in report

    ldap.add_user(100)
    dr = airflow_env.run("user_sync__corp", {"account": "user000100", "dry_run": True})
    assert dr.state == "success" and all_rows(url) == before
    report = report_of(dr)
    assert "no user holds this account (by anchor or by AD username + Domain): a new user is inserted" in report
    assert "language: on_insert — written now: the user is new" in report
    assert "result: dry run: would insert the user as planned above; nothing written" in report
    dr = airflow_env.run("user_sync__corp", {"account": "user000100"})
    changed = changed_rows(before, all_rows(url))
    (row_id,) = changed
    assert changed[row_id]["ad_username"] == (None, "user000100") and "result: inserted" in report_of(dr)


def test_a_number_another_user_holds_is_refused_naming_the_holder(airflow_env, corp):
    ldap, url = corp
    ldap.modify_user(9, **{"msRTCSIP-PrimaryUserAddress": "sip:10002@example.test", "department": "Board"})
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": "user000009"})
    assert dr.state == "success"
    assert all_rows(url) == before
    report = report_of(dr)
    assert "REFUSED: number 10002 is already used by user 'user000002'" in _section(report, "5. claims")
    assert "result: skipped — nothing written for this account" in _section(report, "6. outcome")
