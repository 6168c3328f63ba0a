"""One account on demand, through the DAG: the run reads only that account, writes at most its user, deletes
nobody, and the report explains each step. Each test compares the whole users table before and after."""

from __future__ import annotations

import pytest

from devtools.ad_data import ad_user, user_dn
from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.rules import ad_rules

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
    for i in range(5, 15):  # half the directory gone: a full run would be blocked by the guard (limit 20 %)
        ldap.delete_user(i)
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": "user000005"})
    assert dr.state == "success"
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()}["approve"] == "skipped"  # no approval asked
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
    assert "its values are not shown — the rules' scope does not take it in" in report  # the verdict only
    assert "givenName:" not in report and "telephoneNumber:" not in report
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


def test_a_number_another_user_holds_is_held_aside_naming_the_holder(airflow_env, corp):
    ldap, url = corp
    ldap.modify_user(9, **{"msRTCSIP-PrimaryUserAddress": "sip:10002@example.test", "department": "Board"})
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": "user000009"})
    assert dr.state == "success"
    changed = changed_rows(before, all_rows(url))  # the department is written, the extension stays as it was
    ((row_id, row),) = changed.items()
    assert {c: v for c, v in row.items() if c != "updated_at"} == {"department": (before[row_id]["department"], "Board")}
    assert before[row_id]["ad_username"] == "user000009" and before[row_id]["department"] != "Board"
    report = report_of(dr)
    assert "HELD ASIDE: extension 10002 is already used by user 'user000002'" in _section(report, "5. claims")
    assert "? case 1: extension 10002 of EXAMPLE\\user000009 is held aside" in report


@pytest.mark.samba
def test_on_the_samba_dc_by_guid_nested_groups_disabled_renamed_held_number_and_missing(airflow_env, samba_dc, tmp_path):
    from sqlalchemy import create_engine

    from tests.test_ad_depth import Area, add_staff, rules_for
    from usersync.store.source_state import load_watermark

    ou = Area(samba_dc.add_ou("one-account"))
    ou.tag = "oa"
    dns = add_staff(samba_dc, ou, 4)
    samba_dc.modify(dns["u2"], userAccountControl="514")  # disabled
    inner = samba_dc.add_group(ou.n("inner"), ou, [dns["u1"], dns["u2"]])
    outer = samba_dc.add_group(ou.n("outer"), ou, [dns["u0"], inner])
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(rules_for(ou, delta={}, member_of=[outer], disabled_accounts="exclude")
                      .model_dump(mode="json", exclude_none=True))
    assert airflow_env.run("user_sync__corp").state == "success"
    assert {r["ad_username"] for r in all_rows(url).values()} == {ou.n("u0"), ou.n("u1")}
    engine = create_engine(url)
    mark = load_watermark(engine, "corp")

    guid = samba_dc.guid(dns["u1"])
    samba_dc.rename(dns["u1"], ou.n("u1r"))
    before = all_rows(url)
    dr = airflow_env.run("user_sync__corp", {"account": guid})
    assert dr.state == "success"
    report = report_of(dr)
    assert "(objectGUID=" in _section(report, "1. what was read") and "1 entry returned" in report
    assert f"passed: groups — member of {outer} (nested groups included)" in _section(report, "2. scope")
    match = _section(report, "4. match")
    assert f"by anchor objectGUID {guid}" in match
    assert f"renamed in the source: AD username {ou.n('u1')} → {ou.n('u1r')}" in match
    changed = changed_rows(before, all_rows(url))
    (row_id,) = changed
    assert changed[row_id]["ad_username"] == (ou.n("u1"), ou.n("u1r"))
    assert "read:     one account: " in report and "(the delta watermark is not moved)" in report

    before = all_rows(url)
    for asked, expected in ((ou.n("u2"), "FAILED: disabled accounts — disabled in the source (userAccountControl "
                                         "514): left out (disabled_accounts: exclude)"),
                            (ou.n("u3"), f"FAILED: groups — not a member of {outer}, directly or through nested groups"),
                            (ou.n("nobody"), "the source holds no such account")):
        dr = airflow_env.run("user_sync__corp", {"account": asked})
        assert dr.state == "success" and expected in report_of(dr), report_of(dr)
        assert "nothing to do" in _section(report_of(dr), "6. outcome")
    assert all_rows(url) == before

    samba_dc.modify(dns["u0"], ipPhone="5001")  # u1's number
    dr = airflow_env.run("user_sync__corp", {"account": f"{ou.n('u0')}@example.test"})  # by userPrincipalName
    assert all_rows(url) == before
    assert f"HELD ASIDE: extension 5001 is already used by user '{ou.n('u1r')}'" in _section(report_of(dr), "5. claims")
    assert load_watermark(engine, "corp") == mark  # single-account runs never move the delta watermark
    engine.dispose()


def test_entra_one_user_by_upn_or_name_with_group_scope_and_the_delta_link_kept(airflow_env, tmp_path):
    from sqlalchemy import create_engine

    from tests.support.graph_server import Tenant, graph_user
    from tests.test_entra_source import _rules, graph_source
    from usersync.store.source_state import load_watermark

    tenant = Tenant()
    ids = [tenant.add(graph_user(i)) for i in range(12)]
    tenant.groups.update({"g-uc": [ids[0], "g-inner"], "g-inner": [ids[3], ids[4]]})
    with graph_source(airflow_env, tmp_path, tenant, delta={}) as (_graph, url):
        assert airflow_env.run("user_sync__entra").state == "success"
        engine = create_engine(url)
        link = load_watermark(engine, "entra").read.get("cursor")
        tenant.update(ids[3], mobilePhone="+39 333 7777777")
        tenant.update(ids[4], mobilePhone="+39 333 8888888")  # not asked for: stays
        before, asked = all_rows(url), len(tenant.requests)
        dr = airflow_env.run("user_sync__entra", {"account": "user000003@example.onmicrosoft.com"})
        assert dr.state == "success"
        report = report_of(dr)
        assert "GET /users/user000003@example.onmicrosoft.com — 1 request(s), 1 entry returned" in report
        # only that user was read: no listing (check_source's one-user probe aside), no delta round
        gets = [p for m, p in tenant.requests[asked:] if m == "GET" and "/v1.0/" in p and "%24top=1" not in p]
        assert gets and all(p.startswith("/v1.0/users/user000003@") for p in gets), gets
        changed = changed_rows(before, all_rows(url))
        (row_id,) = changed
        assert changed[row_id]["mobile"] == (None, "+39 333 7777777")
        assert load_watermark(engine, "entra").read.get("cursor") == link  # the delta link is not moved

        airflow_env.rules(_rules(group_id="g-uc"))
        before = all_rows(url)
        dr = airflow_env.run("user_sync__entra", {"account": "user000004", "dry_run": True})
        report = report_of(dr)
        assert "startswith(userPrincipalName,'user000004@')" in report
        assert "passed: group — a member of group g-uc (nested groups included)" in report
        assert "result: dry run: would update" in report and all_rows(url) == before
        dr = airflow_env.run("user_sync__entra", {"account": ids[5]})
        assert "FAILED: group — not a member of group g-uc" in report_of(dr)
        dr = airflow_env.run("user_sync__entra", {"account": "nobody@example.onmicrosoft.com"})
        assert "the source holds no such account" in report_of(dr) and all_rows(url) == before
        engine.dispose()


def test_cucm_one_end_user_by_userid(airflow_env, tmp_path):
    import yaml

    from devtools.tlscerts import make_certs
    from tests.support.axl_server import AxlState, AxlTestServer, cucm_user
    from tests.support.repo import REPO

    certs = make_certs(tmp_path / "certs")
    state = AxlState(users=[cucm_user(i) for i in range(30)])
    axl = AxlTestServer(state, str(certs.cert), str(certs.key)).start()
    try:
        airflow_env.connection("usersync_cucm", conn_type="usersync_axl", host="127.0.0.1", port=axl.port,
                               login=state.login, password=state.password,
                               extra={"ca_certs_file": str(certs.ca), "backoff_seconds": 0.01})
        url = f"sqlite:///{tmp_path / 'users.db'}"
        airflow_env.users_db(url)
        rules = yaml.safe_load((REPO / "include" / "rules" / "cucm.yaml").read_text())
        airflow_env.rules(dict(rules, schedule={"auto": False}, run={"retries": 0},
                               source={**rules["source"], "disabled_accounts": "exclude"}))
        assert airflow_env.run("user_sync__cucm").state == "success"
        state.users[7]["department"] = "Board"
        state.users[8]["department"] = "Board"
        state.users[9]["status"] = "2"
        before, asked = all_rows(url), len(state.requests)
        dr = airflow_env.run("user_sync__cucm", {"account": "cucm0007"})
        report = report_of(dr)
        assert "listUser userid = 'cucm0007' — 1 request(s), 1 entry returned" in report
        assert all("cucm0007" in str(r) for r in state.requests[asked + 1:]), state.requests[asked:]
        changed = changed_rows(before, all_rows(url))
        (row_id,) = changed
        assert changed[row_id]["department"] == ("Support", "Board")
        before = all_rows(url)
        dr = airflow_env.run("user_sync__cucm", {"account": "cucm0009"})
        assert "FAILED: disabled accounts — inactive in CUCM (status 2): left out" in report_of(dr)
        assert "the next full run DELETES this user" in report_of(dr) and all_rows(url) == before
    finally:
        axl.stop()


def test_database_one_row_by_key_on_postgresql(airflow_env, pg_url, tmp_path):
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS staff_one"))
        c.execute(text("CREATE TABLE staff_one (login text, fname text, lname text, email text, extension text)"))
        c.execute(text("INSERT INTO staff_one VALUES " + ", ".join(
            f"('emp{i}', 'F{i}', 'L{i}', 'emp{i}@x.test', '{700 + i}')" for i in range(10))))
    airflow_env.connection("hr_db", conn_type="postgres", host=engine.url.host, port=engine.url.port,
                           login=engine.url.username, password=engine.url.password or "", schema=engine.url.database)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.users_db(url)
    airflow_env.rules({"source": {"name": "staffdb", "type": "database", "conn_id": "hr_db", "table": "staff_one",
                                  "key_attribute": "login", "domain": "HR"},
                       "schedule": {"auto": False}, "run": {"retries": 0},
                       "fields": {"username": {"policy": "import", "attribute": "login"},
                                  "first_name": {"policy": "import", "attribute": "fname"},
                                  "last_name": {"policy": "import", "attribute": "lname"},
                                  "email": {"policy": "import", "attribute": "email"},
                                  "extension": {"policy": "import", "attribute": "extension"}}})
    assert airflow_env.run("user_sync__staffdb").state == "success"
    with engine.begin() as c:
        c.execute(text("UPDATE staff_one SET lname = 'Changed' WHERE login IN ('emp2', 'emp3')"))
        c.execute(text("DELETE FROM staff_one WHERE login = 'emp4'"))
    before = all_rows(url)
    dr = airflow_env.run("user_sync__staffdb", {"account": "emp2"})
    report = report_of(dr)
    assert "table `staff_one` WHERE login = 'emp2' — 1 request(s), 1 entry returned" in report
    changed = changed_rows(before, all_rows(url))
    (row_id,) = changed
    assert changed[row_id]["last_name"] == ("L2", "Changed")
    before = all_rows(url)
    dr = airflow_env.run("user_sync__staffdb", {"account": "emp4"})
    assert "the next full run DELETES this user" in report_of(dr) and all_rows(url) == before
    engine.dispose()


def test_csv_import_one_line_of_the_file(airflow_env, tmp_path, monkeypatch):
    import yaml

    from tests.support.repo import REPO

    imports = tmp_path / "imports"
    imports.mkdir()
    monkeypatch.setenv("USERSYNC_IMPORTS_DIR", str(imports))
    header = "ad_username,domain,username,first_name,last_name,email,department,extension,mobile,language"
    (imports / "staff.csv").write_text(header + "\n" + "".join(
        f"s{i},CORP,s{i},F{i},L{i},s{i}@x.test,IT,{800 + i},,en\n" for i in range(6)))
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.users_db(url)
    airflow_env.rules(yaml.safe_load((REPO / "include" / "rules" / "staff_csv.yaml").read_text()))
    before = all_rows(url)
    dr = airflow_env.run("user_import__staff_csv", {"file": "staff.csv", "account": "s3"})
    assert dr.state == "success"
    report = report_of(dr)
    assert "ad_username = 's3' in staff.csv" in report and "entry: staff.csv line 5" in report
    assert "language: default_if_empty — written now: the user is new" in report
    changed = changed_rows(before, all_rows(url))
    (row_id,) = changed
    assert changed[row_id]["username"] == (None, "s3")
