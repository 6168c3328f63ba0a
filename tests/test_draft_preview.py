"""Draft rules previewed against the real directory, through the DAG: a dry run with ``<source>.draft.yaml``
that says what the draft changes and what it would do — and writes nothing (the whole table is compared)."""

from __future__ import annotations

import pytest
import yaml

from devtools.ad_data import DEPARTMENTS, ad_user
from tests.support.helpers import all_rows, planned, report_of
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow
USERS = 20


@pytest.fixture
def corp(airflow_env, make_slapd, tmp_path):
    ldap = make_slapd(users=USERS)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules())
    assert airflow_env.run("user_sync__corp").state == "success"
    return url


def _draft(airflow_env, data: dict) -> None:
    (airflow_env.rules_dir / "corp.draft.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_narrower_filter_previews_its_deletions_and_the_guards_verdict(airflow_env, corp):
    narrowed = ad_rules(filter=f"(&(objectClass=user)(!(|(department={DEPARTMENTS[0]})(department={DEPARTMENTS[1]}))))")
    _draft(airflow_env, narrowed)
    before = all_rows(corp)
    dr = airflow_env.run("user_sync__corp", {"preview_draft": True})
    assert dr.state == "success"
    assert all_rows(corp) == before
    leaving = sorted(f"user{i:06d}" for i in range(USERS) if ad_user(i)["department"] in DEPARTMENTS[:2])
    assert sorted(d["username"] for d in planned(dr)["deletes"]) == leaving and not planned(dr)["updates"]
    report = report_of(dr)
    assert "mode:     DRAFT PREVIEW of corp.draft.yaml — a dry run with the draft rules, nothing written" in report
    assert f"scope: source.filter: '(objectClass=user)' → '{narrowed['source']['filter']}'" in report
    assert f"- delete {leaving[0]} (EXAMPLE\\{leaving[0]}): no longer in the source" in report
    share = len(leaving) / USERS
    assert share > 0.2  # over the default limit (20 %): the guard would stop a live run with these rules
    assert f"the mass-delete guard would BLOCK these rules live: {len(leaving)} of the {USERS} users" in report
    assert "WARNING: a live run with these rules would be BLOCKED by the mass-delete guard" in report
    assert "nothing to approve here" in report  # a preview applies nothing: no advice to approve or override
    assert "allow_mass_delete" not in report and "Required Actions" not in report
    assert len(all_rows(corp)) == USERS  # nobody deleted


def test_a_changed_transform_previews_exactly_the_updates_and_one_account_under_the_draft(airflow_env, corp):
    data = ad_rules()
    data["fields"]["extension"]["transforms"] = ["sip_user", "last:3"]
    _draft(airflow_env, data)
    before = all_rows(corp)
    dr = airflow_env.run("user_sync__corp", {"preview_draft": True})
    assert dr.state == "success" and all_rows(corp) == before
    updates = planned(dr)["updates"]
    assert {u["username"]: u["changes"] for u in updates} == {
        f"user{i:06d}": {"extension": [str(10000 + i), str(10000 + i)[-3:]]} for i in range(USERS)}
    report = report_of(dr)
    assert "fields: fields.extension.transforms: ['sip_user'] → ['sip_user', 'last:3']" in report

    dr = airflow_env.run("user_sync__corp", {"preview_draft": True, "account": "user000012"})
    report = report_of(dr)
    assert "→ sip_user → '10012' → last:3 → '012'" in report
    assert "update user #13 'user000012': extension: '10012' → '012'" in report
    assert "result: dry run: would update" in report and all_rows(corp) == before


def test_a_broken_draft_is_an_import_error_while_the_live_dag_runs_on(airflow_env, corp, make_slapd):
    import runpy

    from tests.support.repo import REPO

    data = ad_rules()
    data["fields"]["email"]["transforms"] = ["shout"]
    _draft(airflow_env, data)
    with pytest.raises(ValueError, match=r"corp\.draft\.yaml is invalid:\n  - fields\.email.*unknown transform 'shout'"):
        runpy.run_path(str(REPO / "dags" / "user_sync_rules_errors.py"))
    dags = airflow_env.dagbag().dags
    assert "user_sync__corp" in dags and not any("draft" in d for d in dags)
    before = all_rows(corp)
    assert airflow_env.run("user_sync__corp").state == "success"  # the live rules run as before
    dr = airflow_env.run("user_sync__corp", {"preview_draft": True})
    assert dr.state == "failed"
    assert "corp.draft.yaml is invalid" in report_of_failed(dr)
    assert all_rows(corp) == before


def report_of_failed(dr) -> str:
    """A failed run's report (its report task fails too, after writing it to its log)."""
    from usersync_airflow.dag.run_storage import run_folder

    return (run_folder(dr.dag_id, dr.run_id).path / "report.txt").read_text()


def test_a_delta_source_previews_with_a_full_read_and_keeps_its_delta_link(airflow_env, tmp_path):
    from sqlalchemy import create_engine

    from tests.support.graph_server import Tenant, graph_user
    from tests.test_entra_source import _rules, graph_source
    from usersync.store.source_state import load_watermark

    tenant = Tenant()
    for i in range(10):
        tenant.add(graph_user(i))
    with graph_source(airflow_env, tmp_path, tenant, delta={}) as (_graph, url):
        assert airflow_env.run("user_sync__entra").state == "success"
        engine = create_engine(url)
        mark = load_watermark(engine, "entra")
        draft = _rules(delta={}, disabled_accounts="exclude")
        (airflow_env.rules_dir / "entra.draft.yaml").write_text(yaml.safe_dump(draft))
        tenant.update(next(iter(tenant.users)), accountEnabled=False)
        before = all_rows(url)
        dr = airflow_env.run("user_sync__entra", {"preview_draft": True})
        assert dr.state == "success"
        report = report_of(dr)
        assert "read:     full (a draft preview reads in full (the draft's scope may differ))" in report
        assert "scope: source.disabled_accounts: 'import' → 'exclude'" in report
        assert "- delete user000000" in report
        assert all_rows(url) == before and load_watermark(engine, "entra") == mark
        engine.dispose()


def test_draft_rules_sent_with_the_run_are_previewed_and_may_not_read_another_connection(airflow_env, corp):
    """What the console sends where the rules folder cannot be written: the rules as text with the run."""
    narrowed = ad_rules(filter=f"(&(objectClass=user)(!(department={DEPARTMENTS[0]})))")
    before = all_rows(corp)
    dr = airflow_env.run("user_sync__corp", {"preview_draft": True, "draft_rules": yaml.safe_dump(narrowed)})
    assert dr.state == "success" and all_rows(corp) == before
    leaving = sorted(f"user{i:06d}" for i in range(USERS) if ad_user(i)["department"] == DEPARTMENTS[0])
    assert sorted(d["username"] for d in planned(dr)["deletes"]) == leaving
    report = report_of(dr)
    assert "mode:     DRAFT PREVIEW of the draft sent with the run (console)" in report
    assert f"scope: source.filter: '(objectClass=user)' → '{narrowed['source']['filter']}'" in report
    elsewhere = ad_rules(conn_id="someone_elses_ldap")
    dr = airflow_env.run("user_sync__corp", {"preview_draft": True, "draft_rules": yaml.safe_dump(elsewhere)})
    assert dr.state == "failed" and all_rows(corp) == before
    assert "keep the live source's type and connection" in report_of_failed(dr)
