"""SecureOnly refuses certificates it must not trust, each with a message naming the cause — against a real
slapd serving each kind of bad certificate, over LDAPS and over StartTLS."""

from __future__ import annotations

import pytest

from devtools.slapd import SERVICE_DN, SlapdServer
from usersync.sources import SourceTlsError
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings


@pytest.fixture(scope="module", params=["wrong_host", "expired", "self_signed"])
def bad_server(request, tmp_path_factory):
    server = SlapdServer(tmp_path_factory.mktemp(f"tls-{request.param}"), users=1, tls_variant=request.param).start()
    yield request.param, server
    server.stop()


CAUSES = {
    "wrong_host": "is not issued for the host 127.0.0.1",
    "expired": "has expired",
    "self_signed": "is self-signed",
}


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_each_bad_certificate_is_refused_naming_the_cause(bad_server, start_tls):
    variant, server = bad_server
    settings = LdapSettings("127.0.0.1", SERVICE_DN, server.service_password, ldaps_port=server.tls_port,
                            ldap_port=server.port, ca_certs_file=str(server.certs.ca), start_tls=start_tls)
    with pytest.raises(SourceTlsError) as refused:
        LdapDirectory.open(settings)
    assert CAUSES[variant] in str(refused.value), str(refused.value)
