"""The LDAP source against a real slapd with an AD-like schema and AD's 1000-entry size limit."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading

import pytest

from devtools.ad_data import USERS_DN
from devtools.netutil import free_port
from devtools.slapd import SERVICE_DN
from usersync.sources import SourceAuthError, SourceQueryError, SourceTlsError, SourceUnreachable
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings, SecurityMode


@pytest.fixture
def settings(slapd) -> LdapSettings:
    return LdapSettings("127.0.0.1", SERVICE_DN, slapd.service_password, ldaps_port=slapd.tls_port,
                        ldap_port=slapd.port, ca_certs_file=str(slapd.certs.ca), connect_timeout=3)


def test_the_server_enforces_an_ad_like_size_limit(settings):
    """Guards the realism of the test server: an unpaged search stops at 1000 entries."""
    with LdapDirectory.open(settings) as d:
        d.conn.search(USERS_DN, "(objectClass=user)", attributes=["sAMAccountName"])
        assert d.conn.result["description"] == "sizeLimitExceeded"
        assert len(d.conn.response) == 1000


def test_a_search_the_server_cuts_short_fails_instead_of_looking_complete(tmp_path):
    """A server capping paged results (like AD's MaxResultSetSize) must not make the rest look deleted."""
    from devtools.slapd import SlapdServer

    with SlapdServer(tmp_path / "capped", users=1200, sizelimit="size.soft=1000 size.hard=1000 size.prtotal=1100") as s:
        capped = LdapSettings("127.0.0.1", SERVICE_DN, s.service_password, ldaps_port=s.tls_port,
                              ldap_port=s.port, ca_certs_file=str(s.certs.ca))
        with LdapDirectory.open(capped) as d, pytest.raises(SourceQueryError, match="cut short.*sizeLimitExceeded"):
            list(d.search(USERS_DN, "(objectClass=user)", ["sAMAccountName"], page_size=500))


def test_paged_search_reads_past_1000_with_only_the_asked_attributes(settings, caplog):
    caplog.set_level(logging.INFO, logger="usersync")
    with LdapDirectory.open(settings) as d:
        records = list(d.search(USERS_DN, "(objectClass=user)", ["sAMAccountName", "mail"], page_size=300))
    assert len(records) == 1200
    assert len({r.get("sAMAccountName") for r in records}) == 1200
    assert all(set(r.attributes) <= {"sAMAccountName", "mail"} for r in records)
    assert any("1,200" in m and "/s" in m for m in caplog.messages)  # progress line with count and rate


def test_blank_object_path_means_cn_users_of_the_default_naming_context(settings):
    with LdapDirectory.open(settings) as d:
        assert d.default_users_base() == "CN=Users,DC=example,DC=test"


def test_wrong_object_path_is_a_query_error(settings):
    with LdapDirectory.open(settings) as d, pytest.raises(SourceQueryError, match="OU=Nowhere.*does not exist"):
        list(d.search("OU=Nowhere,DC=example,DC=test", "(objectClass=user)", ["cn"]))


def test_secure_only_uses_ldaps_and_verifies_the_certificate(settings):
    with LdapDirectory.open(settings) as d:
        assert d.url.startswith("ldaps://") and not d.fell_back
        assert d.conn.server.ssl


def test_start_tls_secures_the_plain_port(settings):
    with LdapDirectory.open(dataclasses.replace(settings, start_tls=True)) as d:
        assert d.url.endswith("(StartTLS)") and d.conn.tls_started


def test_secure_only_refuses_an_untrusted_certificate(settings, tmp_path):
    from devtools.tlscerts import make_certs

    other_ca = make_certs(tmp_path / "other").ca
    with pytest.raises(SourceTlsError, match="CERTIFICATE_VERIFY_FAILED"):
        LdapDirectory.open(dataclasses.replace(settings, ca_certs_file=str(other_ca)))
    with pytest.raises(SourceTlsError, match="StartTLS"):
        LdapDirectory.open(dataclasses.replace(settings, ca_certs_file=str(other_ca), start_tls=True))


def test_secure_then_unsecure_falls_back_to_plain_only_when_no_secure_port_answers(settings, caplog):
    closed = dataclasses.replace(settings, ldaps_port=free_port(), mode=SecurityMode.SECURE_THEN_UNSECURE)
    with caplog.at_level(logging.WARNING), LdapDirectory.open(closed) as d:
        assert d.fell_back and d.url.startswith("ldap://") and not d.conn.server.ssl
        assert d.default_users_base()
    assert any("falling back to UNENCRYPTED" in m for m in caplog.messages)


def test_secure_then_unsecure_sends_no_bind_in_clear_after_an_untrusted_certificate(settings, tmp_path):
    """The slapd presents a certificate of a CA the connection does not trust (as a server in between would); the
    plain port is a listener that records whatever reaches it: nothing may, the bind password least of all."""
    from devtools.tlscerts import make_certs

    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def record() -> None:
        while not done.is_set():
            try:
                peer, _ = listener.accept()
            except TimeoutError:
                continue
            peer.settimeout(2)
            with peer:
                try:
                    received.append(peer.recv(4096) or b"(connected)")
                except TimeoutError:
                    received.append(b"(connected)")

    done = threading.Event()
    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    untrusted = dataclasses.replace(settings, ca_certs_file=str(make_certs(tmp_path / "o").ca), ldap_port=port,
                                    mode=SecurityMode.SECURE_THEN_UNSECURE)
    try:
        with pytest.raises(SourceTlsError, match="never after a certificate or StartTLS failure") as refused:
            LdapDirectory.open(untrusted)
    finally:
        done.set()
        thread.join()
        listener.close()
    assert received == []
    assert settings.password not in str(refused.value)


def test_secure_then_unsecure_does_not_fall_back_after_a_failed_starttls(settings, tmp_path):
    from devtools.tlscerts import make_certs

    untrusted = dataclasses.replace(settings, ca_certs_file=str(make_certs(tmp_path / "o").ca), start_tls=True,
                                    mode=SecurityMode.SECURE_THEN_UNSECURE)
    with pytest.raises(SourceTlsError, match="StartTLS with .* failed.*never after a certificate or StartTLS failure"):
        LdapDirectory.open(untrusted)


def test_secure_then_unsecure_does_not_fall_back_on_wrong_password(settings):
    bad = dataclasses.replace(settings, password="wrong", mode=SecurityMode.SECURE_THEN_UNSECURE)
    with pytest.raises(SourceAuthError):
        LdapDirectory.open(bad)


def test_unsecure_only_uses_plain_ldap(settings):
    with LdapDirectory.open(dataclasses.replace(settings, mode=SecurityMode.UNSECURE_ONLY)) as d:
        assert d.url == f"ldap://127.0.0.1:{settings.ldap_port}" and not d.conn.server.ssl


def test_wrong_password_is_an_auth_error_without_the_password(settings):
    with pytest.raises(SourceAuthError, match="invalid credentials") as err:
        LdapDirectory.open(dataclasses.replace(settings, password="Not-The-Password-42"))
    assert "Not-The-Password-42" not in str(err.value)
    assert "svc-usersync" in str(err.value)


def test_unreachable_server(settings):
    closed = free_port()
    with pytest.raises(SourceUnreachable, match=f"127.0.0.1:{closed}"):
        LdapDirectory.open(dataclasses.replace(settings, ldaps_port=closed))


def test_settings_repr_hides_the_password(settings):
    assert settings.password not in repr(settings)


def test_object_guid_is_read_in_ads_text_form(settings):
    import uuid

    from devtools.ad_data import ad_user

    with LdapDirectory.open(settings) as d:
        (record,) = list(d.search(USERS_DN, "(sAMAccountName=user000042)", ["sAMAccountName", "objectGUID"]))
    assert record.get("objectGUID") == "{" + str(uuid.UUID(bytes_le=ad_user(42)["objectGUID"])) + "}"


def test_disabled_accounts_can_be_excluded_by_filter(settings, make_slapd):
    from tests.support.rules import ad_rules
    from usersync.rules import parse_rules
    from usersync.sources.ldap.reader import LdapSource

    server = make_slapd(users=5)
    server.modify_user(2, userAccountControl="514")
    local = dataclasses.replace(settings, ldaps_port=server.tls_port, ldap_port=server.port,
                                ca_certs_file=str(server.certs.ca), password=server.service_password)
    for mode, expected in (("import", 5), ("exclude", 4)):
        rules = parse_rules(ad_rules(disabled_accounts=mode))
        with LdapSource(rules.source, local, rules.source_attributes()) as src:
            assert len(list(src.records(src.check()))) == expected
