"""Write-back: values the application owns go back to the directory — through the DAG on the real Samba AD DC
(optimistic per value, per-user failures in words, the guard, dry runs, and no ping-pong on the next full or
delta run) and on the Graph test server (tests/test_write_back_graph.py)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import create_engine, update

from tests.support.helpers import all_rows, changed_rows, report_of
from tests.support.rules import ad_rules
from usersync.core.connection import ConnectionFields
from usersync.core.users_table import users
from usersync.rules import RulesError, parse_rules
from usersync.sources import SourceError
from usersync.sources.ldap.spec import ActiveDirectorySourceSpec
from usersync.sources.ldap.writer import LdapWriter

_areas = itertools.count()
FORMAT = "+39 02 1234 {extension}"


def wb_rules(ou: str | None = None, **write_back) -> dict:
    data = ad_rules(**({"object_path": ou, "filter": "(&(objectCategory=person)(objectClass=user))", "partitions": 1}
                       if ou else {}))
    data["fields"]["extension"] = "keep"  # the application assigns the numbers
    data["fields"]["fax_number"] = "keep"
    data["safety"] = {"max_delete_percent": 100, "approve_blocked_runs": False}
    data["write_back"] = {"attributes": {"ipPhone": "extension",
                                         "telephoneNumber": {"field": "extension", "format": FORMAT}},
                          **write_back}
    return data


# --- the rules --------------------------------------------------------------------------------------------

def _problem(data: dict) -> str:
    with pytest.raises(RulesError) as caught:
        parse_rules(data)
    return str(caught.value)


def test_write_back_rules_refuse_imported_fields_attributes_the_rules_read_and_read_only_sources():
    data = wb_rules()
    data["write_back"]["attributes"]["mail"] = "email"  # imported from mail: it would loop
    text = _problem(data)
    assert "write_back.attributes.mail: email has policy 'import'" in text and "would loop" in text
    assert "the rules read mail" in text

    data = wb_rules()
    data["fields"]["extension"] = {"policy": "default_if_empty", "attribute": "ipPhone"}
    assert "write_back.attributes.ipPhone: the rules read ipPhone" in _problem(data)

    data = wb_rules()
    data["source"] = {"name": "pbx", "type": "database", "conn_id": "db", "table": "people",
                      "key_attribute": "login", "domain": "PBX"}
    assert "write_back: database sources are read only" in _problem(data)

    data = wb_rules()
    data["write_back"]["attributes"]["telephoneNumber"]["format"] = "+39 {ext}"
    assert "must hold {extension} exactly once" in _problem(data)

    data = wb_rules()
    data["write_back"]["attributes"] = {"ipPhone": "enabled"}
    assert "enabled is a yes/no field" in _problem(data)

    rules = parse_rules(wb_rules())
    assert rules.write_back is not None and rules.write_back.max_writes == 500
    assert {"ipPhone", "telephoneNumber"} <= set(rules.source_attributes())  # read, to compare and replace


def test_entra_write_back_takes_only_properties_graph_lets_an_app_write():
    data = wb_rules()
    data["source"] = {"name": "cloud", "type": "entra_id", "conn_id": "graph"}
    data["fields"]["username"] = {"policy": "import", "attribute": "upnLocalPart"}
    for field in ("first_name", "last_name", "email", "department", "enabled"):
        data["fields"].pop(field)
    data["write_back"]["attributes"] = {"businessPhones": "extension", "extensionAttribute3": "fax_number"}
    rules = parse_rules(data)
    assert rules.write_back is not None and set(rules.write_back.attributes) == {"businessPhones", "extensionAttribute3"}
    data["write_back"]["attributes"] = {"ipPhone": "extension"}
    assert "Graph does not let an app write 'ipPhone'" in _problem(data)


def test_write_back_refuses_plain_ldap_before_connecting():
    spec = ActiveDirectorySourceSpec(type="active_directory", name="corp", conn_id="corp_ldap", domain="EXAMPLE")
    plain = ConnectionFields("corp_ldap", host="127.0.0.1", login="cn=admin", password="pw",
                             extra={"security_mode": "UnSecureOnly"})
    with pytest.raises(SourceError, match="write-back runs only over LDAPS or StartTLS, so nothing was written"):
        LdapWriter.from_rules(spec, plain)
    fallback = ConnectionFields("corp_ldap", host="127.0.0.1", extra={"security_mode": "SecureThenUnsecure"})
    assert LdapWriter.from_rules(spec, fallback).settings.mode.value == "SecureOnly"  # never falls back to write


# --- on the Samba AD DC, through the DAG ------------------------------------------------------------------

@pytest.fixture
def area(samba_dc):
    tag = f"wb{next(_areas)}"
    ou = samba_dc.add_ou(tag)
    dns = {f"u{i}": samba_dc.add_user(f"{tag}u{i}", f"Given{i}", f"Sur{i}", ou=ou, mail=f"{tag}u{i}@example.test")
           for i in range(4)}
    return tag, ou, dns


def _assign(url: str, numbers: dict[str, str | None]) -> None:
    """An admin assigns numbers in the application's UI (the users table)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for username, number in numbers.items():
            conn.execute(update(users).where(users.c.username == username).values(extension=number))
    engine.dispose()


def _directory(samba_dc, dns: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    return {short: samba_dc.values(dn, "ipPhone", "telephoneNumber") for short, dn in dns.items()}


@pytest.mark.airflow
@pytest.mark.samba
def test_write_back_to_ad_optimistic_reported_and_quiet_on_the_next_full_and_delta_runs(
        airflow_env, samba_dc, area, tmp_path, monkeypatch):
    tag, ou, dns = area
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules({**wb_rules(ou), "source": {**wb_rules(ou)["source"], "delta": {}}})
    assert airflow_env.run("user_sync__corp").state == "success"  # first import: nothing assigned, nothing written
    assert _directory(samba_dc, dns)["u0"] == {"ipPhone": [], "telephoneNumber": []}
    _assign(url, {f"{tag}u0": "7000", f"{tag}u1": "7001", f"{tag}u2": "7002"})  # u3 has none: nothing to write

    before = _directory(samba_dc, dns)
    dry = airflow_env.run("user_sync__corp", {"dry_run": True})
    assert dry.state == "success" and _directory(samba_dc, dns) == before  # the dry run wrote nothing
    text = report_of(dry)
    assert "write-back (planned, dry run): 6 value(s) would be written to the directory" in text
    assert f"~ would write {tag}u0: telephoneNumber (empty) → '+39 02 1234 7000'" in text

    # an admin edits u2's ipPhone in AD after the run read it and before write-back writes
    original_open = LdapWriter.open

    def admin_edits_first(self):
        samba_dc.modify(dns["u2"], ipPhone="9999")
        original_open(self)

    with monkeypatch.context() as patched:
        patched.setattr(LdapWriter, "open", admin_edits_first)
        live = airflow_env.run("user_sync__corp")
    assert live.state == "success"
    after = _directory(samba_dc, dns)
    assert after["u0"] == {"ipPhone": ["7000"], "telephoneNumber": ["+39 02 1234 7000"]}
    assert after["u1"] == {"ipPhone": ["7001"], "telephoneNumber": ["+39 02 1234 7001"]}
    assert after["u2"] == {"ipPhone": ["9999"], "telephoneNumber": ["+39 02 1234 7002"]}  # the admin's value stays
    assert after["u3"] == {"ipPhone": [], "telephoneNumber": []}
    text = report_of(live)
    assert "write-back: 5 written, 1 changed meanwhile (left), 0 failed — of 6 planned" in text
    assert f"! {tag}u2: ipPhone not written — ipPhone is no longer empty in the directory" in text
    assert f"↑ {tag}u1: ipPhone (empty) → '7001'" in text and "status:   COMPLETED WITH WARNINGS" in text
    from sqlalchemy import create_engine

    from usersync.store.history import timeline

    engine = create_engine(url)  # the per-user log: what was written back, per user, old → new; not what was left
    written = [e for e in timeline(engine, f"{tag}u0") if e.action == "written_back"]
    assert [(e.run_id, e.detail["changes"]) for e in written] == [
        (live.run_id, {"ipPhone": [None, "7000"], "telephoneNumber": [None, "+39 02 1234 7000"]})]
    assert [e.detail["changes"] for e in timeline(engine, f"{tag}u2") if e.action == "written_back"] == [
        {"telephoneNumber": [None, "+39 02 1234 7002"]}]
    engine.dispose()

    # the application owns the number: the next run writes it over the admin's edit, once
    rows = all_rows(url)
    again = airflow_env.run("user_sync__corp")
    assert "write-back: 1 written, 0 changed meanwhile (left), 0 failed — of 1 planned" in report_of(again)
    assert _directory(samba_dc, dns)["u2"]["ipPhone"] == ["7002"]
    assert changed_rows(rows, all_rows(url)) == {}

    # no ping-pong: the writes raised uSNChanged, so the delta run reads those entries — and changes nothing
    settled = _directory(samba_dc, dns)
    for conf in ({}, {"full_sync": True}):
        quiet = airflow_env.run("user_sync__corp", conf)
        text = report_of(quiet)
        assert quiet.state == "success" and "status:   SUCCESS" in text, text
        assert ("read:     full" if conf else "read:     delta") in text
        assert "write-back guard passed: 0 value(s) to write back" in text
        assert changed_rows(rows, all_rows(url)) == {} and _directory(samba_dc, dns) == settled


@pytest.mark.airflow
@pytest.mark.samba
def test_a_bind_account_without_write_rights_fails_per_user_in_words_while_the_sync_succeeds(
        airflow_env, samba_dc, area, tmp_path):
    tag, ou, dns = area
    url = f"sqlite:///{tmp_path / 'users.db'}"
    login = samba_dc.add_account(f"{tag}svc", "Svc-Passw0rd!2", ou=ou)
    airflow_env.connection("corp_ldap", **{**samba_dc.connection_extra(), "login": login,
                                           "password": "Svc-Passw0rd!2"})
    airflow_env.users_db(url)
    airflow_env.rules(wb_rules(ou))
    assert airflow_env.run("user_sync__corp").state == "success"  # an ordinary account may read the users
    _assign(url, {f"{tag}u0": "7100", f"{tag}u1": "7101"})
    before = _directory(samba_dc, dns)
    run = airflow_env.run("user_sync__corp")
    assert run.state == "success"  # the sync succeeded; write-back failed per value, with a warning
    assert _directory(samba_dc, dns) == before
    text = report_of(run)
    assert "write-back: 0 written, 0 changed meanwhile (left), 4 failed — of 4 planned" in text
    assert f"! {tag}u0: ipPhone not written — insufficient access rights: the bind account {login!r} may not " \
           f"write ipPhone on {dns['u0']}" in text
    assert "delegate 'Write ipPhone' on the users' OU to it" in text
    assert "WARNING: 4 value(s) could not be written back to the directory" in text and "Svc-Passw0rd" not in text


@pytest.mark.airflow
@pytest.mark.samba
def test_the_guard_blocks_a_wave_over_max_writes_and_the_override_lets_it_through(airflow_env, samba_dc, area, tmp_path,
                                                                                 monkeypatch):
    tag, ou, dns = area
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(wb_rules(ou, max_writes=3))
    assert airflow_env.run("user_sync__corp").state == "success"
    _assign(url, {f"{tag}u{i}": f"72{i:02d}" for i in range(4)})  # 8 values: over 3
    before, rows = _directory(samba_dc, dns), all_rows(url)
    blocked = airflow_env.run("user_sync__corp")
    assert blocked.state == "failed" and _directory(samba_dc, dns) == before
    text = sorted((tmp_path / "reports" / "corp").glob("*.txt"))[-1].read_text()  # a failed run's report task
    assert "status:   BLOCKED" in text
    assert "BLOCKED by the write-back guard: 8 value(s) to write back (limit: 3)" in text
    assert "blocked at step: write_back" in text and changed_rows(rows, all_rows(url)) == {}
    assert blocked.get_task_instance("apply").state == "success"  # the users table was synced before

    through = airflow_env.run("user_sync__corp", {"allow_mass_write_back": True})
    assert through.state == "success"
    assert ("write-back guard overridden for this run (allow_mass_write_back, set by the Airflow host (no signed-in "
            "user)): 8 value(s)") in report_of(through)
    assert _directory(samba_dc, dns)["u3"] == {"ipPhone": ["7203"], "telephoneNumber": ["+39 02 1234 7203"]}


@pytest.mark.airflow
@pytest.mark.samba
def test_the_documented_delegation_lets_the_account_write_that_attribute_only(airflow_env, samba_dc, area, tmp_path):
    """docs/write-back.md's Samba delegation (samba-tool dsacl set, write property ipPhone on user objects): the
    account writes ipPhone; telephoneNumber, not delegated, fails in words."""
    from devtools.samba import IP_PHONE_GUID

    tag, ou, dns = area
    url = f"sqlite:///{tmp_path / 'users.db'}"
    login = samba_dc.add_account(f"{tag}svc", "Svc-Passw0rd!2", ou=ou)
    samba_dc.delegate(ou, f"CN=Service {tag}svc,{ou}", "WP", IP_PHONE_GUID)
    airflow_env.connection("corp_ldap", **{**samba_dc.connection_extra(), "login": login,
                                           "password": "Svc-Passw0rd!2"})
    airflow_env.users_db(url)
    airflow_env.rules(wb_rules(ou))
    assert airflow_env.run("user_sync__corp").state == "success"
    _assign(url, {f"{tag}u0": "7300"})
    run = airflow_env.run("user_sync__corp")
    assert run.state == "success"
    assert _directory(samba_dc, {"u0": dns["u0"]})["u0"] == {"ipPhone": ["7300"], "telephoneNumber": []}
    text = report_of(run)
    assert "write-back: 1 written, 0 changed meanwhile (left), 1 failed — of 2 planned" in text
    assert f"! {tag}u0: telephoneNumber not written — insufficient access rights" in text
