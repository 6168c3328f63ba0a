"""Cases through the DAG (``dag.test()``) on SQLite and PostgreSQL, the users table compared whole after each run:
a number held aside, mailed once, given to the claimant once the holder lets it go; and an onboarding — a users
table made by a CSV import, then an LDAP source matching its users by e-mail (link) and by name (propose)."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import create_engine, insert, update

from devtools.ad_data import ad_user
from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.mail import smtp_connection
from tests.support.repo import REPO
from tests.support.rules import ad_rules
from usersync.core.users_table import users
from usersync.store.cases import decide, list_cases

pytestmark = pytest.mark.airflow
DAG = "user_sync__corp"
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def corp(request, airflow_env, make_slapd, smtp_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    ldap = make_slapd(users=6)
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.connection("smtp_default", **smtp_connection(smtp_server.port))
    airflow_env.users_db(url)
    engine = create_engine(url)
    yield airflow_env, ldap, url, engine, smtp_server
    engine.dispose()


def _rules(env, on_clash: str | None = None, match: list | None = None) -> None:
    data = ad_rules()
    data["alarms"] = {"to": ["it-admins@example.test"]}
    if on_clash:
        data["fields"]["extension"]["on_clash"] = on_clash
    if match:
        data["match"] = match
    env.rules(data)


def _bodies(inbox) -> list[str]:
    return [html.unescape(m.get_body(("html", "plain")).get_content()) for m in inbox.messages]


def _without(rows: dict, *columns: str) -> dict:
    return {i: {c: v for c, v in row.items() if c not in columns} for i, row in rows.items()}


def test_a_number_a_local_user_holds_is_held_mailed_once_and_given_when_freed(corp):
    env, ldap, url, engine, inbox = corp
    _rules(env)
    assert env.run(DAG, run_after=T0).state == "success"
    with engine.begin() as c:  # a local user holds the number a new hire will bring
        c.execute(insert(users).values(username="reception", extension="10100", language="de"))
    ldap.add_user(100)
    before, mails = all_rows(url), len(inbox.messages)

    dr = env.run(DAG, run_after=T0 + timedelta(days=1))
    assert dr.state == "success"
    after = all_rows(url)
    ((new_id, new),) = [(i, r) for i, r in after.items() if i not in before]
    assert {i: after[i] for i in before} == before  # the whole table: every other row as it was
    assert (new["ad_username"], new["extension"], new["email"]) == ("user000100", None, ad_user(100)["mail"])
    (case,) = list_cases(engine, ["corp"])[0]
    assert (case["field"], case["value"], case["holder"], case["status"], case["seen"]) == \
        ("extension", "10100", "reception", "open", 1)
    assert len(inbox.messages) == mails + 1  # the case is mailed once, when it opens
    body = _bodies(inbox)[-1]
    assert f"? case {case['id']}: extension 10100 of EXAMPLE\\user000100 is held aside: user 'reception' (a local user)" \
        in body and "/usersync/cases?source=corp" in body

    dr = env.run(DAG, run_after=T0 + timedelta(days=2))  # the same clash: no new mail, nothing written
    assert dr.state == "success" and all_rows(url) == after
    assert len(inbox.messages) == mails + 1
    assert list_cases(engine, ["corp"])[0][0]["seen"] == 2
    assert "live cases: 1 open" in report_of(dr)

    with engine.begin() as c:  # the application takes the number off the local user
        c.execute(update(users).where(users.c.username == "reception").values(extension=None))
    freed = all_rows(url)
    dr = env.run(DAG, run_after=T0 + timedelta(days=3))
    assert dr.state == "success"
    assert _without(changed_rows(freed, all_rows(url)), "updated_at") == {new_id: {"extension": (None, "10100")}}
    (closed,) = list_cases(engine, ["corp"], status="all")[0]
    assert closed["status"] == "closed" and closed["closed_run_id"] == dr.run_id
    assert "cases: 1 closed" in report_of(dr)


def test_with_skip_a_clashing_number_still_skips_the_account(corp):
    env, ldap, url, engine, _inbox = corp
    _rules(env, on_clash="skip")
    assert env.run(DAG, run_after=T0).state == "success"
    with engine.begin() as c:
        c.execute(insert(users).values(username="reception", extension="10100"))
    ldap.add_user(100)
    before = all_rows(url)
    dr = env.run(DAG, run_after=T0 + timedelta(days=1))
    assert dr.state == "success" and all_rows(url) == before
    assert "number 10100 is already used by user 'reception'" in report_of(dr)
    assert list_cases(engine, ["corp"], status="all") == ([], 0)


CSV_HEADER = "ad_username,domain,username,first_name,last_name,email,department,extension,mobile,language"


def _csv_rules(env) -> None:
    data = yaml.safe_load((REPO / "include" / "rules" / "staff_csv.yaml").read_text())
    env.rules({**data, "run": {"retries": 0}})


def test_onboarding_a_csv_made_table_links_sure_matches_and_waits_for_decisions(corp, tmp_path, monkeypatch):
    from usersync_airflow.cli.db import main as db_cli

    env, _ldap, url, engine, _inbox = corp
    imports = tmp_path / "imports"
    imports.mkdir()
    monkeypatch.setenv("USERSYNC_IMPORTS_DIR", str(imports))
    lines = [CSV_HEADER]
    for i in range(6):  # 0–3: the directory's e-mail; 4–5: the same name, an old e-mail
        u = ad_user(i)
        mail = u["mail"] if i < 4 else f"old{i}@corp.example"
        lines.append(f"old{i},CSV,local{i},{u['givenName']},{u['sn']},{mail},Front desk,{2000 + i},,de")
    lines.append("temp,CSV,temp,Temp,Worker,temp@corp.example,Front desk,2999,,de")  # in no directory
    (imports / "staff.csv").write_text("\n".join(lines) + "\n")
    _csv_rules(env)
    assert env.run("user_import__staff_csv", {"file": "staff.csv"}).state == "success"
    names = [f"local{i}" for i in range(6)] + ["temp"]
    assert db_cli(["detach", *names, "--source", "staff_csv", "--by", "onboarding"]) == 0  # now local users
    with engine.begin() as c:  # adjusted by hand in the application
        c.execute(update(users).where(users.c.username.in_(["local0", "local4"])).values(voicemail_enabled=True))

    _rules(env, match=[{"by": "email", "level": "link"}, {"by": "name", "level": "propose"}])
    start = all_rows(url)
    ids = {row["username"]: i for i, row in start.items()}
    dr = env.run(DAG, run_after=T0)
    assert dr.state == "success"
    after = all_rows(url)
    changed = changed_rows(start, after)
    linked = {ids[f"local{i}"] for i in range(4)}
    inserted = set(after) - set(start)
    assert set(changed) == linked | inserted  # the whole table: local4, local5 and temp untouched
    for i in range(4):
        row = after[ids[f"local{i}"]]
        assert (row["username"], row["ad_username"], row["domain"], row["source"], row["extension"]) == \
            (f"user{i:06d}", f"user{i:06d}", "EXAMPLE", "corp", str(10000 + i))
        assert row["language"] == "de"  # what the application owns stays (on_insert in the rules: not applied)
    assert after[ids["local0"]]["voicemail_enabled"] is True
    assert inserted == set()  # accounts 4 and 5 wait for a person; 0–3 were linked
    cases = {c["username"]: c for c in list_cases(engine, ["corp"])[0]}
    assert set(cases) == {"user000004", "user000005"}
    assert [c["id"] for c in cases["user000004"]["detail"]["candidates"]] == [ids["local4"]]
    assert "2 match(es) waiting for a decision" in report_of(dr)

    assert decide(engine, [cases["user000004"]["id"]], "confirm", "alice", ["corp"]) == {cases["user000004"]["id"]: "ok"}
    assert decide(engine, [cases["user000005"]["id"]], "reject", "alice", ["corp"]) == {cases["user000005"]["id"]: "ok"}
    dr = env.run(DAG, run_after=T0 + timedelta(days=1))
    assert dr.state == "success"
    final = all_rows(url)
    changed = changed_rows(after, final)
    (new_id,) = set(final) - set(after)
    assert set(changed) == {ids["local4"], new_id}
    assert (final[ids["local4"]]["ad_username"], final[ids["local4"]]["voicemail_enabled"],
            final[ids["local4"]]["language"]) == ("user000004", True, "de")
    assert final[new_id]["ad_username"] == "user000005" and final[ids["local5"]] == after[ids["local5"]]
    assert {c["status"] for c in list_cases(engine, ["corp"], status="all")[0]} == {"closed"}
    assert "2 decision(s) applied" in report_of(dr)
