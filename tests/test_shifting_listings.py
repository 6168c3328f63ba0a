"""Sources that page by offset (SCIM ``startIndex``, AXL ``skip``) while the directory changes under the read,
through the DAG: users deleted between pages make later users slide back out of the read, and those users must
not be removed — every removal is confirmed with the source account by account first. Users added between
pages, a user changed during the read and served again (alone on the last page too), sub-attribute names in
another case, and the limit on confirmations. The users table is compared whole after each run."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.axl_server import AxlState, AxlTestServer, cucm_user
from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.repo import REPO
from tests.support.scim_server import ENTERPRISE, ScimServer, scim_user
from tests.test_scim_source import scim_rules, url_reports

pytestmark = pytest.mark.airflow
PAGE = 100


def provider_users(server: ScimServer) -> list[dict[str, Any]]:
    """Every user the provider holds, read through its own API in its own order."""
    answer = server.api.get("/Users", params={"startIndex": 1, "count": 100000}).json()
    return answer.get("Resources", [])


def expected(user: dict[str, Any]) -> tuple:
    """The users-table row a provider user maps to under ``scim_rules``: the primary work e-mail first."""
    work = [e for e in user["emails"] if e["type"] == "work"]
    email = next((e for e in work if e.get("primary")), work[0])["value"].lower()
    phone = next(p for p in user["phoneNumbers"] if p["type"] == "work")["value"]
    return (user["userName"].lower(), user["name"]["givenName"], user["name"]["familyName"], email,
            user[ENTERPRISE]["department"], "".join(c for c in phone if c.isdigit())[-5:], user["active"], user["id"])


def table(url: str) -> set[tuple]:
    """The users table as the same tuples, every row (local users included)."""
    return {(r["username"], r["first_name"], r["last_name"], r["email"], r["department"], r["extension"],
             r["enabled"], r["external_id"]) for r in all_rows(url).values()}


def in_order(server: ScimServer) -> list[str]:
    return [u["id"] for u in provider_users(server)]


def test_users_deleted_between_pages_remove_only_themselves(airflow_env, scim):
    server, url = scim
    for i in range(300):
        server.add(scim_user(i))
    airflow_env.rules(scim_rules(page_size=PAGE))
    assert airflow_env.run("user_sync__scimdir").state == "success"
    order = in_order(server)
    doomed = [order[i] for i in (3, 40, 77, 120, 150)]  # on pages 1 and 2, already served (so read this run)
    slid = order[200:205]  # what page 3 would have started with: they slide back onto page 2, never read
    server.after_page[101] = lambda: [server.delete(d) for d in doomed]
    before = all_rows(url)

    run = airflow_env.run("user_sync__scimdir")

    assert run.state == "success", report_of(run)
    assert all_rows(url) == before  # the 5 slid users are not removed; the 5 deleted ones had been read
    assert set(slid) <= {r["external_id"] for r in before.values()}
    report = report_of(run)
    assert "0 of 5 gone or out of scope, 5 still there" in report
    assert "totalResults changed from 300 to 295 while the read paged" in report

    run = airflow_env.run("user_sync__scimdir")  # the next run sees the deletions: confirmed, then removed

    assert run.state == "success", report_of(run)
    assert table(url) == {expected(u) for u in provider_users(server)}  # the whole table is the provider's users
    changes = changed_rows(before, all_rows(url))
    assert sorted(c["external_id"][0] for c in changes.values()) == sorted(doomed)  # those 5, nobody else
    assert "5 of 5 gone or out of scope, 0 still there" in report_of(run)


def test_users_added_between_pages_are_read_twice_and_nobody_is_removed(airflow_env, scim):
    server, url = scim
    for i in range(300):
        server.add(scim_user(i))
    airflow_env.rules(scim_rules(page_size=PAGE))
    assert airflow_env.run("user_sync__scimdir").state == "success"
    boundary = in_order(server)[199]
    added: list[str] = []
    server.after_page[101] = lambda: added.extend(server.add(scim_user(1000 + i)) for i in range(60))
    before = all_rows(url)

    run = airflow_env.run("user_sync__scimdir")

    assert run.state == "success", report_of(run)
    assert any(a < boundary for a in added)  # some landed before page 3: some of its users were served twice
    changes = changed_rows(before, all_rows(url))
    assert all(before.get(i) is None for i in changes)  # only insertions: nobody removed or changed
    provider = {expected(u) for u in provider_users(server)}
    assert table(url) <= provider
    assert airflow_env.run("user_sync__scimdir").state == "success"  # the next run brings the rest
    assert table(url) == provider


def test_a_user_changed_during_the_read_ends_in_its_last_state_even_alone_on_the_last_page(airflow_env, scim):
    server, url = scim
    for i in range(301):
        server.add(scim_user(i))
    server.faults["by_modified"] = True  # listed in order of last change: a changed user moves to the end
    airflow_env.rules(scim_rules(page_size=PAGE))
    assert airflow_env.run("user_sync__scimdir").state == "success"
    order = in_order(server)
    first, slid = order[0], order[200]  # first: served on page 1, changed, served again alone on page 4
    server.after_page[101] = lambda: server.patch(first, "name.familyName", "Changed-Late")
    before = all_rows(url)

    run = airflow_env.run("user_sync__scimdir")

    assert run.state == "success", report_of(run)
    assert table(url) == {expected(u) for u in provider_users(server)}
    changes = changed_rows(before, all_rows(url))
    assert [(before[i]["external_id"], c["last_name"][1]) for i, c in changes.items()] == [(first, "Changed-Late")]
    assert slid in {r["external_id"] for r in all_rows(url).values()}
    assert "0 of 1 gone or out of scope, 1 still there" in report_of(run)


def test_sub_attribute_names_in_any_case_give_the_same_table(airflow_env, scim):
    server, url = scim
    for i in range(40):
        server.add(scim_user(i, emails=[{"value": f"second{i}@work.example", "type": "work"},
                                        {"value": f"first{i}@work.example", "type": "work", "primary": True},
                                        {"value": f"u{i}@home.example", "type": "home"}]))
    server.faults["shout"] = True  # Primary, TYPE, Value
    airflow_env.rules(scim_rules(page_size=PAGE))
    run = airflow_env.run("user_sync__scimdir")
    assert run.state == "success", report_of(run)
    shouted = all_rows(url)
    server.faults.clear()  # the same provider in RFC case: the same table, nothing written
    assert table(url) == {expected(u) for u in provider_users(server)}
    assert {r["email"] for r in shouted.values()} == {f"first{i}@work.example" for i in range(40)}
    assert airflow_env.run("user_sync__scimdir").state == "success"
    assert all_rows(url) == shouted


def test_removals_over_the_confirmation_limit_wait_and_are_confirmed_once_allowed(airflow_env, scim):
    server, url = scim
    ids = [server.add(scim_user(i)) for i in range(50)]
    rules = scim_rules(page_size=PAGE)
    rules["safety"]["max_confirmations"] = 3
    airflow_env.rules(rules)
    assert airflow_env.run("user_sync__scimdir").state == "success"
    for gone in ids[:5]:
        server.delete(gone)
    before = all_rows(url)
    requests = server.id_requests

    run = airflow_env.run("user_sync__scimdir")

    assert run.state == "failed"
    assert all_rows(url) == before and server.id_requests == requests  # nothing written, nothing asked
    report = sorted(url_reports(url).glob("*.txt"))[-1].read_text()  # a failed run's report
    assert "BLOCKED: 5 removal(s) would first have to be confirmed" in report
    assert "safety.max_confirmations (3)" in report

    run = airflow_env.run("user_sync__scimdir", conf={"allow_mass_delete": True})

    assert run.state == "success", report_of(run)
    assert server.id_requests == requests + 5  # each removal asked once, after the guard was lifted
    assert table(url) == {expected(u) for u in provider_users(server)}
    assert "5 of 5 gone or out of scope, 0 still there" in report_of(run)


# --- Cisco UCM over AXL (listUser pages by skip / first) ----------------------------------------------------

def test_cucm_users_deleted_between_listuser_pages_remove_only_themselves(airflow_env, tmp_path, monkeypatch):
    from devtools.tlscerts import make_certs

    certs = make_certs(tmp_path / "tls")
    state = AxlState(users=[cucm_user(i) for i in range(300)])
    server = AxlTestServer(state, str(certs.cert), str(certs.key)).start()
    try:
        monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
        url = f"sqlite:///{tmp_path / 'users.db'}"
        airflow_env.users_db(url)
        airflow_env.connection("usersync_cucm", conn_type="usersync_axl", host="127.0.0.1", port=server.port,
                               login=state.login, password=state.password,
                               extra={"axl_version": "14.0", "ca_certs_file": str(certs.ca), "backoff_seconds": 0.01})
        rules = yaml.safe_load((REPO / "include" / "rules" / "cucm.yaml").read_text())
        rules["source"]["page_size"] = PAGE
        airflow_env.rules(dict(rules, schedule={"auto": False}, run={"retries": 0}))
        assert airflow_env.run("user_sync__cucm").state == "success"
        order = sorted(state.users, key=lambda u: u["uuid"])  # the server's listing order
        doomed = {order[i]["uuid"] for i in (5, 60, 130, 170)}  # on pages 1 and 2
        slid = {u["uuid"] for u in order[200:204]}
        state.after_page[100] = lambda: state.users.__setitem__(
            slice(None), [u for u in state.users if u["uuid"] not in doomed])
        before = all_rows(url)

        run = airflow_env.run("user_sync__cucm")

        assert run.state == "success", report_of(run)
        assert all_rows(url) == before  # the slid users kept; the deleted ones had been read
        assert "0 of 4 gone or out of scope, 4 still there" in report_of(run)

        run = airflow_env.run("user_sync__cucm")

        assert run.state == "success", report_of(run)
        after = all_rows(url)
        assert {(r["username"], r["external_id"], r["extension"], r["email"]) for r in after.values()} == {
            (u["userid"], u["uuid"], u["pattern"], u["mailid"]) for u in state.users}
        changes = changed_rows(before, after)
        assert {c["external_id"][0] for c in changes.values()} == doomed
        assert slid <= {r["external_id"] for r in after.values()}
        assert "4 of 4 gone or out of scope, 0 still there" in report_of(run)
    finally:
        server.stop()
