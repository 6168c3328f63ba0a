"""The SCIM 2.0 source through the DAG, against scim2-server (written from the RFCs by the python-scim project,
not by us): a first import of 2,000 users over many pages, then changes made through the server's own API — a
renamed userName keeps its user by id, a deactivated account is disabled, a deleted one removed, new ones
inserted — with multi-valued e-mails with and without ``primary``, the enterprise department and non-ASCII names;
the users table compared whole after each run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.scim_server import ENTERPRISE, scim_user

pytestmark = pytest.mark.airflow
USERS = 2000


def scim_rules(**source) -> dict:
    return {
        "source": {"name": "scimdir", "type": "scim", "conn_id": "scim_conn", "domain": "SCIM", "page_size": 150,
                   **source},
        "schedule": {"auto": False},
        "run": {"retries": 0},
        "safety": {"max_delete_percent": 100, "approve_blocked_runs": False},
        "fields": {
            "username": {"policy": "import", "attribute": "userName", "transforms": ["lower"]},
            "first_name": {"policy": "import", "attribute": "name.givenName"},
            "last_name": {"policy": "import", "attribute": "name.familyName"},
            "email": {"policy": "import", "attribute": 'emails[type eq "work"].value', "transforms": ["lower"]},
            "department": {"policy": "import", "attribute": f"{ENTERPRISE}:department"},
            "extension": {"policy": "import", "attribute": 'phoneNumbers[type eq "work"].value',
                          "transforms": ["digits", "last:5"]},
            "enabled": {"policy": "import", "attribute": "active", "transforms": ["flag"]},
        },
    }


def test_first_import_pages_through_2000_users_and_changes_follow_by_id(airflow_env, scim):
    server, url = scim
    ids = [server.add(scim_user(i)) for i in range(USERS)]
    airflow_env.rules(scim_rules())
    run = airflow_env.run("user_sync__scimdir")
    assert run.state == "success", report_of(run)
    rows = all_rows(url)
    assert len(rows) == USERS
    by_name = {r["username"]: r for r in rows.values()}
    # the whole table against what the provider holds: every user, every mapped value
    for i in range(USERS):
        user, row = scim_user(i), by_name[f"user{i:05d}"]
        assert (row["first_name"], row["last_name"], row["email"], row["department"], row["extension"], row["enabled"],
                row["external_id"]) == (user["name"]["givenName"], user["name"]["familyName"], f"user{i:05d}@work.example",
                                        user[ENTERPRISE]["department"], str(20000 + i)[-5:], True, ids[i])
    zoe = by_name["user00000"]
    assert (zoe["first_name"], zoe["last_name"], zoe["email"], zoe["department"], zoe["extension"]) == (
        "Zoë", "Müller", "user00000@work.example", "Sales", "20000")
    assert by_name["user00002"]["last_name"] == "Ødegård" and by_name["user00001"]["first_name"] == "Łukasz"
    assert zoe["external_id"] == ids[0] and zoe["domain"] == "SCIM"
    assert "read 2000" in report_of(run)

    server.patch(ids[1], "userName", "user00001.renamed")  # a rename keeps its user: matched by id
    server.patch(ids[2], "active", False)
    server.delete(ids[3])
    new = server.add(scim_user(USERS, emails=[{"value": "x@home.example", "type": "home"},
                                              {"value": "second@work.example", "type": "work"},
                                              {"value": "first@work.example", "type": "work", "primary": True}]))
    before = all_rows(url)
    run = airflow_env.run("user_sync__scimdir")
    assert run.state == "success", report_of(run)
    after = all_rows(url)
    changed = changed_rows(before, after)
    renamed = next(r for r in after.values() if r["external_id"] == ids[1])
    assert renamed["username"] == "user00001.renamed" and renamed["id"] == by_name["user00001"]["id"]
    assert next(r for r in after.values() if r["external_id"] == ids[2])["enabled"] is False
    assert not any(r["external_id"] == ids[3] for r in after.values())
    added = next(r for r in after.values() if r["external_id"] == new)
    assert added["email"] == "first@work.example"  # of two work e-mails, the primary one
    assert len(changed) == 4  # renamed, disabled, deleted, inserted — nothing else moved


def test_a_back_dated_run_reports_when_it_ran_not_when_it_was_due(airflow_env, scim):
    server, url = scim
    for i in range(5):
        server.add(scim_user(i))
    airflow_env.rules(scim_rules())
    began = datetime.now(UTC)
    run = airflow_env.run("user_sync__scimdir", run_after=began - timedelta(days=3))
    report = report_of(run)
    assert run.state == "success", report
    start = datetime.fromisoformat(re.search(r"^start:\s+(\S+)$", report, re.M)[1])
    duration = float(re.search(r"^duration: (-?[\d.]+) s$", report, re.M)[1])
    assert began - timedelta(seconds=1) <= start <= datetime.now(UTC)  # today, not three days ago
    assert 0 <= duration <= (datetime.now(UTC) - began).total_seconds() + 1  # the run's time, not three days


def _users_kept(airflow_env, server, url, **faults) -> str:
    """A first run imports 300 users; then the provider gets something wrong: the run must fail, naming it, and
    delete nobody. Returns the failed run's report."""
    for i in range(300):
        server.add(scim_user(i))
    airflow_env.rules(scim_rules(page_size=100))
    assert airflow_env.run("user_sync__scimdir").state == "success"
    before = all_rows(url)
    server.faults.update(faults)
    run = airflow_env.run("user_sync__scimdir")
    assert run.state == "failed"
    assert all_rows(url) == before  # nothing deleted, nothing written
    return sorted(url_reports(url).glob("*.txt"))[-1].read_text()  # a failed run's report


def url_reports(url: str):
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).parent / "reports" / "scimdir"


@pytest.mark.parametrize("faults, words", [
    ({"ignore_start": True}, "it ignores startIndex, so the read cannot page"),
    ({"total_offset": -150}, "said totalResults 150 but returned more users after it"),
    ({"total_offset": 150}, "returned no users at startIndex 301 though totalResults says 450"),
    ({"html": 99}, "with something that is not JSON (text/html"),
])
def test_a_provider_that_gets_paging_or_errors_wrong_fails_in_words_and_deletes_nobody(airflow_env, scim, faults, words):
    server, url = scim
    assert words in _users_kept(airflow_env, server, url, **faults)


def test_a_provider_that_ignores_count_or_throttles_is_still_read_whole(airflow_env, scim):
    server, url = scim
    for i in range(1200):
        server.add(scim_user(i))
    airflow_env.rules(scim_rules(page_size=100))
    server.faults.update(ignore_count=True, throttle=2)  # its own pages (1,000) instead of 100; two 429s first
    run = airflow_env.run("user_sync__scimdir")
    assert run.state == "success" and len(all_rows(url)) == 1200
    # the two throttled, check's probe, pages of 1,000 and 200 — and, the last page being no smaller than asked,
    # one more that must be empty (a totalResults too low never ends a read early)
    assert server.list_requests == 2 + 1 + 2 + 1


# --- the Webex Control Hub preset, on the Webex test server --------------------------------------------------

def _webex(airflow_env, tmp_path, org, fresh: str | None = None, conn_type: str = "usersync_webex", **extra):
    import yaml

    from devtools.tlscerts import make_certs
    from tests.support.repo import REPO
    from tests.support.webex_server import WebexServer

    certs = make_certs(tmp_path / "certs")
    server = WebexServer(org, str(certs.cert), str(certs.key)).start()
    url = f"sqlite:///{tmp_path / 'users.db'}"  # the same file when called again: the table stays
    airflow_env.users_db(url)
    airflow_env.connection("webex_acme", conn_type=conn_type, host=server.base_url, login=org.client_id,
                           password=org.client_secret,
                           extra={"org_id": org.org_id, "refresh_token": fresh or next(iter(org.refresh_tokens)),
                                  "ca_certs_file": str(certs.ca), "max_wait": 2, **extra})
    preset = yaml.safe_load((REPO / "include" / "rules" / "webex.yaml").read_text())
    airflow_env.rules({**preset, "schedule": {"auto": False}, "run": {"retries": 0},
                       "safety": {"max_delete_percent": 100, "approve_blocked_runs": False}})
    return server, url


# a SCIM connection naming a Webex organisation (org_id) rotates and keeps tokens the same way
@pytest.mark.parametrize("conn_type", ["usersync_webex", "usersync_scim"])
def test_the_webex_preset_reads_calling_numbers_renews_tokens_and_keeps_a_rotated_refresh_token(airflow_env, tmp_path,
                                                                                                 conn_type):
    from airflow.models import Variable  # the metadata database's, as an admin's `airflow variables get` reads it

    from tests.support.webex_server import Org, webex_user
    from usersync_airflow.hooks.connections import kept_variable

    org = Org(rotate=True)
    org.new_refresh_token()
    org.users = [webex_user(i, org.org_id) for i in range(1500)]
    org.throttle = [1]  # the first list request is throttled once
    server, url = _webex(airflow_env, tmp_path, org, conn_type=conn_type)
    try:
        run = airflow_env.run("user_sync__webex_acme")
        assert run.state == "success", report_of(run)
        rows = {r["username"]: r for r in all_rows(url).values()}
        assert len(rows) == 1500
        agent = rows["agent00001@acme.example"]
        assert (agent["extension"], agent["alias_extension"], agent["mobile"], agent["domain"]) == (
            "5001", "14085550001", "+1 650 555 0001", "WEBEX-ACME")
        assert agent["first_name"] == "Björn" and agent["department"] == "Sales" and agent["external_id"] == org.users[1]["id"]
        assert rows["agent00005@acme.example"]["enabled"] is False  # active false
        # the token was renewed from the refresh token; Webex rotated it, and the new one is kept for the next run
        kept = Variable.get(kept_variable("webex_acme", "refresh_token"), deserialize_json=True)["value"]
        assert kept in org.refresh_tokens and len(org.refresh_tokens) == 1
        assert all(f"/identity/scim/{org.org_id}/v2/" in path for method, path in org.requests if method == "GET")

        org.expire_access_tokens()
        org.users[2]["phoneNumbers"][1]["value"] = "7777"  # a number nobody else holds
        again = airflow_env.run("user_sync__webex_acme")  # a new task process: the kept refresh token is the one used
        assert again.state == "success", report_of(again)
        assert {r["username"]: r for r in all_rows(url).values()}["agent00002@acme.example"]["extension"] == "7777"
        assert org.client_secret not in report_of(again) and kept not in report_of(again)

        # an admin authorises the integration again and puts the new refresh token in the connection: it wins over
        # the kept one (renewed from the connection's old token)
        org.refresh_tokens.clear()
        org.expire_access_tokens()
        server.stop()
        server, url = _webex(airflow_env, tmp_path, org, fresh=org.new_refresh_token(), conn_type=conn_type)
        assert airflow_env.run("user_sync__webex_acme").state == "success"
    finally:
        server.stop()


def test_an_expired_refresh_token_fails_in_words_and_deletes_nobody(airflow_env, tmp_path, monkeypatch):
    from tests.support.webex_server import Org, webex_user

    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    org = Org()
    org.new_refresh_token()
    org.users = [webex_user(i, org.org_id) for i in range(20)]
    server, url = _webex(airflow_env, tmp_path, org)
    try:
        assert airflow_env.run("user_sync__webex_acme").state == "success"
        before = all_rows(url)
        org.refresh_tokens.clear()  # 90 days unused, or revoked
        org.expire_access_tokens()
        assert airflow_env.run("user_sync__webex_acme").state == "failed"
        assert all_rows(url) == before
        text = sorted((tmp_path / "reports" / "webex_acme").glob("*.txt"))[-1].read_text()
        assert "failed at step: check_source" in text
        assert "Webex refused to renew the access token of connection 'webex_acme' (invalid_grant: The refresh token " \
               "provided is expired" in text and "authorise the integration again" in text
    finally:
        server.stop()


# --- rules, one account, the Test button --------------------------------------------------------------------

def test_scim_rules_refuse_delta_bad_filters_and_paths_naming_them():
    from usersync.rules import RulesError, parse_rules

    def problem(**source) -> str:
        data = scim_rules(**source)
        with pytest.raises(RulesError) as caught:
            parse_rules(data)
        return str(caught.value)

    assert "SCIM 2.0 defines no change feed" in problem(delta={})
    assert "string is not closed" in problem(filter='userType eq "Employee')
    assert "has no comparison" in problem(filter="active")
    data = scim_rules()
    data["fields"]["email"]["attribute"] = 'emails[type = "work"].value'
    with pytest.raises(RulesError) as caught:
        parse_rules(data)
    assert "the value filter [type = \"work\"] is not 'attribute op value'" in str(caught.value)


def test_one_account_by_username_with_the_filter_tested_by_the_provider(airflow_env, scim):
    server, url = scim
    ids = [server.add(scim_user(i)) for i in range(5)]
    server.patch(ids[4], "active", False)
    airflow_env.rules(scim_rules(filter="active eq true"))
    run = airflow_env.run("user_sync__scimdir", {"account": "user00002"})
    assert run.state == "success"
    assert [r["username"] for r in all_rows(url).values()] == ["user00002"]
    text = report_of(run)
    assert 'filter userName eq "user00002"' in text and "passed: filter active eq true" in text
    out = airflow_env.run("user_sync__scimdir", {"account": ids[4], "dry_run": True})
    assert "FAILED: filter active eq true" in report_of(out)


def test_the_test_button_says_whether_the_provider_answers(airflow_env, scim):
    from usersync_airflow.hooks import ScimHook

    server, _ = scim
    server.add(scim_user(1))
    assert ScimHook("scim_conn").test_connection() == (True, f"readable at {server.url}: 1 user(s)")
    airflow_env.connection("scim_conn", conn_type="usersync_scim", host=server.url + "/nowhere", password="t",
                           extra={"insecure_http": True})
    ok, message = ScimHook("scim_conn").test_connection()
    assert not ok and "the SCIM provider answered 404" in message


def test_a_filter_the_provider_refuses_is_named_with_scims_own_words(airflow_env, scim, monkeypatch):
    server, url = scim
    server.add(scim_user(1))
    airflow_env.rules(scim_rules(filter='userName eq "a" and'))  # well-formed enough for the rules, not for SCIM
    assert airflow_env.run("user_sync__scimdir").state == "failed"
    text = sorted(url_reports(url).glob("*.txt"))[-1].read_text()
    assert "failed at step: check_source" in text
    assert "the SCIM provider answered 400 invalidFilter" in text and "(the filter is not valid SCIM filter syntax" in text


def test_a_token_refused_mid_read_is_renewed_once_from_the_refresh_token(tmp_path):
    from devtools.tlscerts import make_certs
    from tests.support.webex_server import Org, WebexServer, webex_user
    from usersync.core.connection import ConnectionFields
    from usersync.sources.errors import SourceAuthError
    from usersync.sources.scim import webex
    from usersync.sources.scim.client import ScimClient

    org = Org()
    refresh = org.new_refresh_token()
    org.users = [webex_user(i, org.org_id) for i in range(3)]
    certs = make_certs(tmp_path / "certs")
    server = WebexServer(org, str(certs.cert), str(certs.key)).start()
    try:
        conn = ConnectionFields("webex", "usersync_webex", host=server.base_url, login=org.client_id,
                                password=org.client_secret,
                                extra={"org_id": org.org_id, "refresh_token": refresh, "ca_certs_file": str(certs.ca)})
        client = ScimClient(webex.webex_settings(conn), webex.RefreshingToken.from_connection(conn))
        assert client.get("Users")["totalResults"] == 3 and org.renewals == 1
        org.expire_access_tokens()  # the cached access token stops working during the read
        assert client.get("Users")["totalResults"] == 3 and org.renewals == 2  # 401 → renewed once → answered
        org.refresh_tokens.clear()
        org.expire_access_tokens()
        with pytest.raises(SourceAuthError, match="Webex refused to renew the access token of connection 'webex'"):
            client.get("Users")  # 401, and the renewal itself is refused: said once, no loop
        client.close()
    finally:
        server.stop()
