"""Several domain controllers in one connection: three real slapd servers with the same directory. The first is
down, then hung (accepts, never answers), then serving a certificate of an untrusted CA: each run succeeds on
the next DC within the connection's timeouts, the report names the DC that answered and the one skipped; the
Test button reports every DC; partitions and delta reads stay on the DC ``check_source`` chose."""

from __future__ import annotations

import os
import re
import signal

import pytest

from devtools.slapd import SERVICE_DN, SlapdServer
from tests.support.helpers import table_rows
from tests.support.rules import ad_rules
from usersync.core.connection import ConnectionFields
from usersync.core.run_folder import folder_name
from usersync.sources.errors import SourceError, SourceUnreachable
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings, split_host
from usersync.sources.ldap.reader import LdapSource
from usersync.sources.ldap.spec import ActiveDirectorySourceSpec

USERS = 12


@pytest.fixture(scope="module")
def dcs(tmp_path_factory):
    """Three DCs with the same users, and a CA bundle trusting all three."""
    servers = [SlapdServer(tmp_path_factory.mktemp(f"dc{n}"), users=USERS).start() for n in (1, 2, 3)]
    bundle = tmp_path_factory.mktemp("bundle") / "cas.pem"
    bundle.write_text("".join(s.certs.ca.read_text() for s in servers))
    yield servers, bundle
    for server in servers:
        server.stop()


def _hosts(servers) -> str:
    return ",".join(f"127.0.0.1:{s.tls_port}" for s in servers)


def _connection(servers, bundle, **extra) -> dict:
    return {"conn_type": "usersync_ldap", "host": _hosts(servers), "login": SERVICE_DN,
            "password": servers[0].service_password,
            "extra": {"ca_certs_file": str(bundle), "connect_timeout": 3, "receive_timeout": 3, **extra}}


@pytest.fixture
def corp(airflow_env, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.users_db(url)
    airflow_env.rules(ad_rules(partitions=2))

    def run():
        dr = airflow_env.run("user_sync__corp")
        name = folder_name(dr.run_id)
        return dr, next((tmp_path / "reports" / "corp").glob(f"*_{name}.txt")).read_text()

    return url, run


def _run_seconds(text: str) -> float:
    """The run's duration as the report gives it (it bounds how long check_source waited for the hung DC)."""
    return float(re.search(r"duration: ([\d.]+) s", text)[1])


@pytest.mark.airflow
@pytest.mark.parametrize("trouble", ["down", "hung", "untrusted"])
def test_the_run_succeeds_on_the_next_dc_and_the_report_names_it(airflow_env, dcs, corp, trouble):
    servers, bundle = dcs
    first, second = servers[0], servers[1]
    url, run = corp
    if trouble == "untrusted":  # the bundle trusts the second and third DC's CA only
        bundle = bundle.with_name("two.pem")
        bundle.write_text(second.certs.ca.read_text() + servers[2].certs.ca.read_text())
    airflow_env.connection("corp_ldap", **_connection(servers, bundle))
    if trouble == "down":
        first.stop()
    elif trouble == "hung":
        os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        dr, text = run()
    finally:
        if trouble == "down":
            first.resume()
        elif trouble == "hung":
            os.kill(first.proc.pid, signal.SIGCONT)
    assert dr.state == "success", text
    assert f"from:     ldaps://127.0.0.1:{second.tls_port}" in text
    skipped = f"WARNING: domain controller ldaps://127.0.0.1:{first.tls_port} skipped: "
    why = {"down": "cannot connect to", "hung": "did not answer within 3 s",
           "untrusted": "the certificate's issuer is not in the CA bundle"}[trouble]
    assert any(line.startswith(skipped) and why in line for line in text.splitlines()), text
    assert len(table_rows(url)) == USERS
    if trouble == "hung":  # the wait the timeouts promise (3 s in check_source), not the 120 s default
        assert 3 <= _run_seconds(text) < 100


@pytest.mark.airflow
def test_a_run_fails_naming_every_dc_when_none_answers(airflow_env, dcs, corp, tmp_path):
    servers, bundle = dcs
    url, run = corp
    wrong = tmp_path / "other-ca.pem"  # no DC's CA: every DC fails TLS
    from devtools.tlscerts import make_certs
    wrong.write_text(make_certs(tmp_path / "other").ca.read_text())
    airflow_env.connection("corp_ldap", **_connection(servers, wrong))
    dr, text = run()
    assert dr.state == "failed"
    assert "none of the 3 domain controllers answered" in text
    assert all(f"ldaps://127.0.0.1:{s.tls_port}" in text for s in servers)
    assert table_rows(url) == {}


@pytest.mark.airflow
def test_the_test_button_reports_every_dc(airflow_env, dcs):
    from usersync_airflow.hooks.ldap import LdapHook

    servers, bundle = dcs
    airflow_env.connection("corp_ldap", **_connection(servers, bundle))
    ok, message = LdapHook("corp_ldap").test_connection()
    assert ok and message.count("bound to ldaps://127.0.0.1:") == 3, message
    servers[1].stop()
    try:
        ok, message = LdapHook("corp_ldap").test_connection()
    finally:
        servers[1].resume()
    assert not ok, message
    assert message.count("bound to") == 2 and f"127.0.0.1:{servers[1].tls_port}: cannot connect" in message
    assert servers[0].service_password not in message


def _settings(servers, bundle) -> LdapSettings:
    return LdapSettings.from_connection(ConnectionFields("corp_ldap", **_connection(servers, bundle)))


def test_partitions_read_the_dc_check_chose_and_a_delta_read_only_that_dc(dcs):
    servers, bundle = dcs
    settings = _settings(servers, bundle)
    spec = ActiveDirectorySourceSpec(type="active_directory", name="corp", conn_id="corp_ldap",
                                     filter="(objectClass=user)", domain="EXAMPLE")
    third = f"127.0.0.1:{servers[2].tls_port}"
    info = {"own": {"host": third, "base": "CN=Users,DC=example,DC=test", "filter": "(objectClass=user)"}}
    with LdapSource(spec, settings, ["sAMAccountName"]) as source:
        assert len(list(source.partition(info, 0, 1))) == USERS
        assert source._directory.url == f"ldaps://{third}"  # check chose the third DC: extract reads it too
    servers[2].stop()
    try:
        with LdapSource(spec, settings, ["sAMAccountName"]) as source:  # a full read may move on to another DC
            assert len(list(source.partition(info, 0, 1))) == USERS
            assert source._directory.url == f"ldaps://127.0.0.1:{servers[0].tls_port}"
        delta = {**info, "read": {"mode": "delta", "since": {"server": "CN=DC3", "position": {"usn": 5}}}}
        with LdapSource(spec, settings, ["sAMAccountName"]) as source, pytest.raises(SourceUnreachable, match=third):
            list(source.partition(delta, 0, 1))  # a watermark belongs to one DC: never read changes elsewhere
    finally:
        servers[2].resume()


def test_host_entries_are_parsed_and_a_malformed_one_is_named():
    assert split_host("dc1.corp.example") == ("dc1.corp.example", None)
    assert split_host("dc2.corp.example:1636") == ("dc2.corp.example", 1636)
    assert split_host("[fd00::10]:636") == ("fd00::10", 636)
    settings = LdapSettings.from_connection(ConnectionFields(
        "corp_ldap", host=" dc1.corp.example , dc2.corp.example:1636 "))
    assert [(s.host, s.ldaps_port) for s in settings.per_host()] == [("dc1.corp.example", 636),
                                                                      ("dc2.corp.example", 1636)]
    with pytest.raises(SourceError, match=r"host entry 'dc3:notaport' is not"):
        LdapSettings.from_connection(ConnectionFields("corp_ldap", host="dc1,dc3:notaport"))


def test_wrong_credentials_stop_at_the_first_dc(dcs):
    servers, bundle = dcs
    settings = _settings(servers, bundle)
    from dataclasses import replace

    from usersync.sources.errors import SourceAuthError
    with pytest.raises(SourceAuthError, match=f"127.0.0.1:{servers[0].tls_port} refused the credentials"):
        LdapDirectory.open(replace(settings, password="wrong-Passw0rd"))
