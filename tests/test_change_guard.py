"""The change guard through the DAG (real slapd, SQLite and PostgreSQL users tables): harm the mass-delete guard
does not count — a read that shrank, a field cleared on many users — stops the run before anything is written,
names what and where, and passes once lifted for one run."""

from __future__ import annotations

import pytest

from devtools.ad_data import DEPARTMENTS
from tests.support.helpers import table_rows
from tests.support.rules import ad_rules
from usersync.core.users_table import source_health
from usersync.plan.change_guard import ReadDrop, check_changes, field_shifts, place_of, places, read_drop
from usersync.rules.model import SafetySpec

pytestmark = pytest.mark.airflow

USERS = 200


@pytest.fixture(autouse=True)
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports"


def _setup(airflow_env, ldap, url, **safety):
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    data = ad_rules(page_size=100)
    # the mass-delete guard out of the way: this is about what it does not see
    data["safety"] = {"deletion": "keep", "approve_blocked_runs": False, **safety}
    airflow_env.rules(data)


def _report(reports) -> str:
    """The newest run's report (a failed run's report is in its file, not in XCom)."""
    return max((reports / "corp").glob("*.txt"), key=lambda p: p.stat().st_mtime_ns).read_text()


def test_a_source_that_returns_half_its_users_is_stopped_naming_the_drop_and_passes_when_lifted(
        airflow_env, make_slapd, users_url, reports):
    ldap = make_slapd(USERS)
    _setup(airflow_env, ldap, users_url)
    assert airflow_env.run("user_sync__corp").state == "success"
    full = table_rows(users_url)
    assert len(full) == USERS
    for i in range(0, USERS, 2):  # half the accounts vanish from the search (deletion keep: nobody is removed)
        ldap.delete_user(i)
    ldap.modify_user(1, department="Moved")  # and a real change, held back with the rest

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed"
    assert table_rows(users_url) == full  # nothing written, not even the update
    report = _report(reports)
    assert "BLOCKED by the change guard: the read returned 100 accounts, 100 (50.0%) fewer than the 200 of the " \
           "last applied full read" in report
    assert "the drop is in cn=users,dc=example,dc=test (200 → 100)" in report
    assert "status:   BLOCKED" in report

    lifted = airflow_env.run("user_sync__corp", conf={"allow_mass_change": True})
    assert lifted.state == "success"
    after = table_rows(users_url)
    assert after == {**full, "user000001": {**after["user000001"]}} and after["user000001"]["department"] == "Moved"
    assert "change guard overridden for this run (allow_mass_change" in _report(reports)
    # the applied read is the one the next is compared with: the same 100 accounts pass
    assert airflow_env.run("user_sync__corp").state == "success"
    assert table_rows(users_url) == after


def test_a_field_cleared_on_most_users_is_stopped_with_samples_and_passes_when_lifted(
        airflow_env, make_slapd, users_url, reports):
    ldap = make_slapd(USERS)
    _setup(airflow_env, ldap, users_url, fields={"extension": {"max_changed_percent": 40}})
    assert airflow_env.run("user_sync__corp").state == "success"
    full = table_rows(users_url)
    for i in range(120):  # 60% lose their department: a renamed or unreadable attribute
        ldap.modify_user(i, department=None)

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed"
    assert table_rows(users_url) == full
    report = _report(reports)
    assert "department cleared for 120 of the 200 users (60.0%; limit 30%)" in report
    assert "department — user000000: Sales → (empty)" in report  # the sample the approval shows too

    lifted = airflow_env.run("user_sync__corp", conf={"allow_mass_change": True})
    assert lifted.state == "success"
    after = table_rows(users_url)
    assert set(after) == set(full)
    for name, row in after.items():
        i = int(name[4:])
        assert row == {**full[name], "department": None if i < 120 else DEPARTMENTS[i % len(DEPARTMENTS)],
                       "updated_at": row["updated_at"]}


def test_the_last_good_read_is_kept_only_by_a_run_that_applied(airflow_env, make_slapd, users_url, reports):
    from sqlalchemy import create_engine, select

    ldap = make_slapd(50)
    _setup(airflow_env, ldap, users_url)
    assert airflow_env.run("user_sync__corp", conf={"dry_run": True}).state == "success"
    engine = create_engine(users_url)
    with engine.connect() as conn:
        assert conn.execute(select(source_health)).first() is None  # a dry run keeps nothing
    assert airflow_env.run("user_sync__corp").state == "success"
    with engine.connect() as conn:
        row = conn.execute(select(source_health)).mappings().one()
    assert (row["source"], row["last_read"], row["state"]) == ("corp", 50, "ok")
    assert row["last_read_where"] == '{"cn=users,dc=example,dc=test": 50}'
    engine.dispose()


def test_places_are_parent_containers_of_directory_accounts_else_domains():
    assert place_of("CN=Anna Rossi,OU=Sales,DC=corp,DC=test", "CORP") == "ou=sales,dc=corp,dc=test"
    assert place_of("2819c223-7f76-453a-919d-413861904646", "EXAMPLE") == "EXAMPLE"
    assert place_of("row 7", None) == "(no domain)"
    assert places(["CN=a,OU=X,DC=c", "CN=b,OU=X,DC=c", "42"], ["D", "D", "E"]) == {"ou=x,dc=c": 2, "E": 1}


def test_a_small_or_absent_drop_is_no_verdict_and_the_limit_is_a_strict_share():
    from usersync.plan.change_guard import LastRead

    last = LastRead(count=100, where={"A": 60, "B": 40})
    assert read_drop(100, {"A": 60, "B": 40}, last, SafetySpec()) is None
    assert read_drop(95, {"A": 55, "B": 40}, last, SafetySpec()) is None  # 5 < guard_min_users
    assert read_drop(50, {}, None, SafetySpec()) is None  # nothing to compare with
    assert read_drop(50, {}, last, SafetySpec(max_read_drop_percent=None)) is None
    at_limit = read_drop(70, {"A": 30, "B": 40}, last, SafetySpec())
    assert isinstance(at_limit, ReadDrop) and at_limit.percent == 30.0 and not at_limit.over
    over = read_drop(60, {"A": 20, "B": 40}, last, SafetySpec())
    assert over is not None and over.over and over.where == [("A", 60, 20)]
    # the drop the plan's removals stand for is the mass-delete guard's: not asked about twice
    assert read_drop(60, {"A": 20, "B": 40}, last, SafetySpec(), removals=35) is None
    partly = read_drop(60, {"A": 20, "B": 40}, last, SafetySpec(), removals=5)
    assert partly is not None and partly.unseen == 35 and partly.over
    assert not read_drop(60, {"A": 20, "B": 40}, last, SafetySpec(), removals=15).over  # 25% unseen


def test_field_shifts_count_changes_and_clears_and_an_approval_lifts_the_verdict():
    import pyarrow as pa

    from usersync.plan.change_guard import shifts_to_json
    from usersync.rules.model import FieldLimit

    n = 20
    updates = pa.table({"username": [f"u{i}" for i in range(n)],
                        "old_department": ["Sales"] * n, "new_department": [None] * 12 + ["Sales"] * 8,
                        "old_extension": [str(i) for i in range(n)], "new_extension": [str(i + 100) for i in range(n)]})
    limits = {"department": FieldLimit(max_cleared_percent=50), "extension": FieldLimit(max_changed_percent=100)}
    (dept,) = field_shifts(updates, 20, limits, min_users=10)  # extension: 100% changed is within 100%
    assert (dept.field, dept.changed, dept.cleared) == ("department", 12, 12)
    assert dept.over() == ["department cleared for 12 of the 20 users (60.0%; limit 50%)"]
    assert dept.samples[0] == "u0: Sales → (empty)" and len(dept.samples) == 10
    assert field_shifts(updates, 20, limits, min_users=13) == []  # fewer users concerned than the floor
    found = shifts_to_json(None, [dept])
    assert check_changes(found).blocked
    approved = check_changes(found, approved_by="alice")
    assert not approved.blocked and approved.message.startswith("change guard lifted for this run, approved by alice")
