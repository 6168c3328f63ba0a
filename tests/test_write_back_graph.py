"""Write-back to Entra ID through the DAG, on the Graph test server: PATCH /users/{id} with the documented body,
a value changed between read and write left and reported, 429 in the middle of the wave waited out, 403
Authorization_RequestDenied and an on-premises-mastered user named in words, and a quiet next (delta) run."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import create_engine, update

from tests.support.graph_server import Tenant, graph_user
from tests.support.helpers import all_rows, changed_rows, report_of
from tests.test_entra_source import _rules, graph_source
from usersync.core.users_table import users
from usersync.sources.entra.writer import EntraWriter

pytestmark = pytest.mark.airflow
FORMAT = "+39 0461 {extension}"


def _write_back_rules(airflow_env, **source) -> None:
    data = _rules(**source)
    data["fields"]["extension"] = "keep"  # the application assigns the numbers
    data["write_back"] = {"attributes": {"businessPhones": {"field": "extension", "format": FORMAT}}}
    airflow_env.rules(data)


def _assign(url: str, numbers: dict[int, str]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, number in numbers.items():
            conn.execute(update(users).where(users.c.username == f"user{i:06d}").values(extension=number))
    engine.dispose()


def _phones(tenant: Tenant) -> dict[int, list[str]]:
    return {i: tenant.users[graph_user(i)["id"]]["businessPhones"] for i in range(6) if graph_user(i)["id"] in tenant.users}


def test_write_back_patches_business_phones_optimistically_through_throttling_and_then_stays_quiet(
        airflow_env, tmp_path, monkeypatch):
    tenant = Tenant()
    for i in range(6):  # user 0 and 5 have no business phone; the others +39 0461 100i
        tenant.add(graph_user(i))
    with graph_source(airflow_env, tmp_path, tenant, delta={}) as (server, url):
        _write_back_rules(airflow_env, delta={})
        assert airflow_env.run("user_sync__entra").state == "success"
        _assign(url, {1: "1001", 2: "2002", 3: "3003", 5: "5005"})  # user 1: already what Graph holds
        tenant.patch_throttle = [None, 1]  # the second PATCH is throttled once (Retry-After: 1 s)

        def admin_edits_first(self):
            tenant.update(graph_user(3)["id"], businessPhones=["+39 0461 9999"])  # after the read, before the write
            original(self)

        original = EntraWriter.open
        with monkeypatch.context() as patched:
            patched.setattr(EntraWriter, "open", admin_edits_first)
            run = airflow_env.run("user_sync__entra")
        assert run.state == "success"
        phones = _phones(tenant)
        assert phones[2] == ["+39 0461 2002"] and phones[5] == ["+39 0461 5005"]
        assert phones[3] == ["+39 0461 9999"] and phones[1] == ["+39 0461 1001"] and phones[0] == []
        patches = [(path, body) for path, body in tenant.patches]
        assert (f"/v1.0/users/{graph_user(2)['id']}", {"businessPhones": ["+39 0461 2002"]}) in patches
        assert len(patches) == 2  # users 2 and 5; user 3 was not written
        # the second PATCH met a 429 and was sent again after Retry-After: three PATCH requests for two values
        assert sum(method == "PATCH" for method, _ in tenant.requests) == 3
        text = report_of(run)
        assert "write-back: 2 written, 1 changed meanwhile (left), 0 failed — of 3 planned" in text
        assert "! user000003: businessPhones not written — businessPhones is '+39 0461 9999' now, not " \
               "'+39 0461 1003' as the run read it" in text
        assert "↑ user000005: businessPhones (empty) → '+39 0461 5005'" in text
        # the users were read again just before the PATCH, by id
        assert any(method == "GET" and "$filter=id in ('" in unquote_plus(path) for method, path in tenant.requests)

        rows = all_rows(url)
        again = airflow_env.run("user_sync__entra")  # the application's number wins on the next run, once
        assert "write-back: 1 written" in report_of(again) and _phones(tenant)[3] == ["+39 0461 3003"]
        quiet = airflow_env.run("user_sync__entra")  # a delta read that sees the PATCHed users: nothing to do
        text = report_of(quiet)
        assert "read:     delta" in text and "write-back guard passed: 0 value(s) to write back" in text
        assert changed_rows(rows, all_rows(url)) == {} and len(tenant.patches) == 3  # nothing more sent


def test_a_refused_permission_and_an_on_premises_user_fail_in_words_and_the_sync_succeeds(airflow_env, tmp_path):
    tenant = Tenant()
    for i in range(4):
        tenant.add(graph_user(i, onPremisesSyncEnabled=i == 2))
    with graph_source(airflow_env, tmp_path, tenant) as (server, url):
        _write_back_rules(airflow_env)
        assert airflow_env.run("user_sync__entra").state == "success"
        _assign(url, {1: "2001", 2: "2002"})
        tenant.may_update_users = False
        before = json.dumps(tenant.users, sort_keys=True)
        denied = airflow_env.run("user_sync__entra")
        assert denied.state == "success" and json.dumps(tenant.users, sort_keys=True) == before
        text = report_of(denied)
        assert "write-back: 0 written, 0 changed meanwhile (left), 2 failed — of 2 planned" in text
        assert f"permission refused: the app {tenant.client_id} may not update users (Graph 403 " \
               "Authorization_RequestDenied: Insufficient privileges to complete the operation.); grant it the " \
               "application permission User.ReadUpdate.All" in text
        assert "WARNING: 2 value(s) could not be written back" in text and tenant.client_secret not in text

        tenant.may_update_users = True
        run = airflow_env.run("user_sync__entra")
        text = report_of(run)
        assert "write-back: 1 written, 0 changed meanwhile (left), 1 failed — of 2 planned" in text
        assert "! user000002: businessPhones not written — the user is synchronised from on-premises Active " \
               "Directory, so Entra ID refuses businessPhones" in text
        assert _phones(tenant)[1] == ["+39 0461 2001"]
