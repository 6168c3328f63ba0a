"""The Cisco UCM (AXL) source against the protocol-faithful test server in tests/axl_server.py."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, select

from devtools.tlscerts import make_certs
from tests.support.axl_server import AxlState, AxlTestServer, cucm_user
from tests.support.repo import REPO
from usersync.core.users_table import users
from usersync.plan.mapping import map_records
from usersync.rules import RulesError, parse_rules
from usersync.sources import SourceAuthError, SourceError, SourceQueryError, SourceTlsError, SourceUnreachable
from usersync.sources.cucm.reader import AxlSettings, CucmSource

RULES = yaml.safe_load((REPO / "include" / "rules" / "cucm.yaml").read_text())


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("axl-tls"))


@pytest.fixture
def axl(certs):
    state = AxlState(users=[cucm_user(i) for i in range(600)])
    server = AxlTestServer(state, str(certs.cert), str(certs.key)).start()
    yield server
    server.stop()


@pytest.fixture
def settings(axl, certs) -> AxlSettings:
    return AxlSettings("127.0.0.1", axl.state.login, axl.state.password, port=axl.port, version="14.0",
                       ca_certs_file=str(certs.ca), backoff_seconds=0.01, timeout=5)


def _rules(**source):
    data = yaml.safe_load(yaml.safe_dump(RULES))
    data["source"].update(source)
    return parse_rules(data)


def _read(settings, rules=None, sleeps=None):
    rules = rules or _rules()
    src = CucmSource(rules.source, settings, rules.source_attributes(), sleep=(sleeps.append if sleeps is not None else lambda s: None))
    with src:
        return list(src.records(src.check()))


# --- the test server is faithful -----------------------------------------------------------------------
def _post(axl, certs, body: str, soapaction: str, auth=("axlreader", "Axl-Secret-1"), path="/axl/"):
    return httpx.post(f"https://127.0.0.1:{axl.port}{path}", content=body, auth=auth,
                      headers={"SOAPAction": soapaction, "Content-Type": "text/xml"}, verify=str(certs.ca))


def _envelope(version="14.0", criteria="<userid>%</userid>", tags="<userid/><mobileNumber/><primaryExtension><pattern/></primaryExtension>", skip=0, first=3):
    return (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:ns="http://www.cisco.com/AXL/API/{version}"><soapenv:Body><ns:listUser>'
            f"<searchCriteria>{criteria}</searchCriteria><returnedTags>{tags}</returnedTags>"
            f"<skip>{skip}</skip><first>{first}</first></ns:listUser></soapenv:Body></soapenv:Envelope>")


def test_server_enforces_the_protocol(axl, certs):
    ok = '"CUCM:DB ver=14.0 listUser"'
    assert _post(axl, certs, _envelope(), ok, auth=("axlreader", "wrong")).status_code == 401
    assert _post(axl, certs, _envelope(), ok, path="/other/").status_code == 404
    mismatch = _post(axl, certs, _envelope(version="12.5"), ok)
    assert mismatch.status_code == 500 and "do not match" in mismatch.text
    empty = _post(axl, certs, _envelope(criteria=""), ok)
    assert empty.status_code == 500 and "search criteria is required" in empty.text
    page = _post(axl, certs, _envelope(), ok)
    assert page.status_code == 200
    assert page.text.count("<user uuid=\"{") == 3 and "<mobileNumber/>" in page.text  # empty tag kept
    assert "<primaryExtension><pattern>" in page.text and "<lastName>" not in page.text  # projection
    assert "<return/>" in _post(axl, certs, _envelope(skip=600), ok).text
    big = _post(axl, certs, _envelope(first=300), ok)
    assert big.status_code == 500 and "Suggestive Row Fetch: less than 250 rows" in big.text


# --- the client and source ------------------------------------------------------------------------------
def test_pages_past_the_row_cap_with_the_suggested_smaller_page(axl, settings, caplog):
    caplog.set_level(logging.INFO)
    records = _read(settings)  # page_size 1000 in the rules: too large, CUCM suggests < 250
    assert len(records) == 600
    assert len({r.get("uuid") for r in records}) == 600
    assert any("too large; retrying with 249" in m for m in caplog.messages)
    first = records[0]
    assert first.get("primaryExtension") == "3000" and first.get("primaryExtensionPartition") == "Internal_PT"
    assert first.account == f"CUCM user cucm0000 {first.get('uuid')}"
    sent = axl.state.requests[-1]
    assert sent["soapaction"] == '"CUCM:DB ver=14.0 listUser"'
    assert b"<searchCriteria><userid>%</userid></searchCriteria>" in sent["body"]


def test_rules_map_cucm_users_with_the_uuid_as_external_id(settings):
    rules = _rules()
    mapped, skipped = map_records(rules, _read(settings, rules))
    assert skipped == []
    user = next(m for m in mapped if m.ad_username == "cucm0003")
    assert user.external_id == cucm_user(3)["uuid"] and user.domain == "CUCM"
    assert user.values["extension"] == "3003" and user.values["mobile"] == "+39 347 0000003"


def test_503_is_retried_with_backoff(axl, settings):
    axl.state.fail_503 = 3
    sleeps = []
    assert len(_read(settings, sleeps=sleeps)) == 600
    assert sleeps == [0.01, 0.02, 0.04]


def test_503_gives_up_after_the_retry_bound(axl, settings):
    axl.state.fail_503 = 100
    with pytest.raises(SourceUnreachable, match="busy .HTTP 503.; gave up after 2 retries"):
        _read(dataclasses.replace(settings, max_retries=2))


def test_slow_answers_time_out_and_are_retried_then_fail(axl, settings):
    axl.state.delay = 1.0
    with pytest.raises(SourceUnreachable, match="timed out; gave up after 1 retries"):
        _read(dataclasses.replace(settings, timeout=0.2, max_retries=1))


def test_wrong_password_wrong_version_untrusted_certificate_unreachable(axl, settings, tmp_path):
    with pytest.raises(SourceAuthError, match="HTTP 401") as err:
        _read(dataclasses.replace(settings, password="Nope-Pw-1"))
    assert "Nope-Pw-1" not in str(err.value)
    with pytest.raises(SourceError, match="unexpected HTTP 599"):
        _read(dataclasses.replace(settings, version="12.5"))
    other = make_certs(tmp_path / "other").ca
    with pytest.raises(SourceTlsError, match="CERTIFICATE_VERIFY_FAILED"):
        _read(dataclasses.replace(settings, ca_certs_file=str(other)))
    from devtools.netutil import free_port

    with pytest.raises(SourceUnreachable, match="cannot connect"):
        _read(dataclasses.replace(settings, port=free_port()))


def test_other_faults_fail_with_the_fault_text(axl, settings):
    rules = _rules(userid_pattern="")
    with pytest.raises(SourceQueryError, match="search criteria is required"):
        _read(settings, rules)


def test_inactive_users_are_imported_or_excluded_per_rules(axl, settings):
    axl.state.users[5] = cucm_user(5, status="2")
    assert len(_read(settings)) == 600
    records = _read(settings, _rules(disabled_accounts="exclude"))
    assert len(records) == 599 and "cucm0005" not in {r.get("userid") for r in records}


def test_malformed_answers_and_records(axl, settings):
    axl.state.users[7] = cucm_user(7, mailid="not-an-address")
    axl.state.users[8] = cucm_user(8, userid="")
    rules = _rules()
    mapped, skipped = map_records(rules, _read(settings, rules))
    assert len(mapped) == 598
    reasons = {s.account.split()[2]: s.reason for s in skipped}
    assert "not an e-mail address" in reasons["cucm0007"] and "no userid" in next(
        r for a, r in reasons.items() if a != "cucm0007")
    axl.state.garbage = True
    with pytest.raises(SourceQueryError, match="malformed AXL answer"):
        _read(settings)


def test_rules_refuse_tags_listuser_cannot_return():
    data = yaml.safe_load(yaml.safe_dump(RULES))
    data["fields"]["first_name"] = {"policy": "import", "attribute": "displayName"}
    with pytest.raises(RulesError, match="not returned by CUCM listUser: displayName"):
        parse_rules(data)


@pytest.mark.airflow
def test_cucm_to_postgresql_end_to_end(airflow_env, axl, certs, pg_url):
    airflow_env.connection("usersync_cucm", conn_type="usersync_axl", host="127.0.0.1", port=axl.port,
                           login=axl.state.login, password=axl.state.password,
                           extra={"axl_version": "14.0", "ca_certs_file": str(certs.ca), "backoff_seconds": 0.01})
    airflow_env.users_db(pg_url)
    airflow_env.rules(dict(RULES, schedule={"auto": False}, run={"retries": 0}))
    dr = airflow_env.run("user_sync__cucm")
    assert dr.state == "success"
    engine = create_engine(pg_url)
    with engine.connect() as c:
        rows = {r.username: r for r in c.execute(select(users))}
    assert len(rows) == 600
    assert rows["cucm0042"].external_id == cucm_user(42)["uuid"] and rows["cucm0042"].extension == "3042"
    # wrong password: fails at check_source, nothing changes
    airflow_env.connection("usersync_cucm", conn_type="usersync_axl", host="127.0.0.1", port=axl.port,
                           login=axl.state.login, password="bad-one", extra={"ca_certs_file": str(certs.ca)})
    dr = airflow_env.run("user_sync__cucm")
    assert dr.state == "failed"
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()}["check_source"] == "failed"
    with engine.connect() as c:
        assert len(c.execute(select(users)).fetchall()) == 600
    engine.dispose()


@pytest.mark.bad_input
def test_one_account_by_a_userid_whose_underscore_is_a_wildcard_is_found_past_the_first_page(axl, settings):
    """``_`` matches any one character in listUser: j_smith also matches jasmith … jzsmith; every page of matches
    is read until the exact userid is among them, so the account is never "not found" (nor its user removed)."""
    axl.state.users += [cucm_user(700 + i, userid=f"j{chr(97 + i)}smith") for i in range(26)]
    axl.state.users.append(cucm_user(800, userid="j_smith", uuid="{FFFFFFFF-0000-4000-8000-000000000800}"))
    rules = _rules(page_size=5)
    with CucmSource(rules.source, settings, rules.source_attributes()) as source:
        found = source.read_one({}, "j_smith")
        assert found.record is not None and found.record.get("uuid") == "{FFFFFFFF-0000-4000-8000-000000000800}"
        assert found.requests > 1 and found.in_scope
        assert source.read_one({}, "j_nobody").record is None
