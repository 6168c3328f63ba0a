"""A hostile or broken server cannot keep a read going for ever or fill the worker's memory: a repeated next link,
cookie or page ends the read in words, a page count past what the source announced does too, and an answer body
over ``max_response_mb`` is refused once decompressed — nothing is deleted in each case."""

from __future__ import annotations

import gzip

import httpx
import pytest

from usersync.sources.errors import SourceQueryError
from usersync.sources.scim.client import ScimClient, ScimSettings, StaticToken


def _scim(handler, **settings) -> ScimClient:
    # no network: the answers below, through the client's own auth and retry layers
    return ScimClient(ScimSettings("https://scim.example.test/v2", **settings), StaticToken("t"),
                      transport=httpx.MockTransport(handler))


@pytest.mark.bad_input
def test_an_answer_larger_than_max_response_mb_once_decompressed_is_refused():
    bomb = gzip.compress(b'{"Resources": [' + b" " * (3 * 2**20) + b"]}")  # 3 MiB of blanks, a few KiB on the wire
    assert len(bomb) < 2**16
    client = _scim(lambda request: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip",
                                                                              "Content-Type": "application/scim+json"}),
                   max_response_bytes=2**20)
    with pytest.raises(SourceQueryError, match=r"larger than 1 MiB \(max_response_mb\)"):
        client.get("Users")
    roomy = _scim(lambda request: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"}),
                  max_response_bytes=4 * 2**20)
    assert roomy.get("Users") == {"Resources": []}


@pytest.mark.bad_input
def test_a_scim_provider_whose_total_keeps_growing_is_stopped_past_the_pages_it_announced():
    from tests.test_scim_source import scim_rules
    from usersync.rules import parse_rules
    from usersync.sources.scim.reader import ScimSource

    served = []

    def endless(request):
        start = int(request.url.params["startIndex"])
        served.append(start)
        users = [{"id": f"u{start + i}", "userName": f"user{start + i}"} for i in range(10)]
        return httpx.Response(200, json={"totalResults": start + 50, "Resources": users})  # always more to come

    rules = parse_rules(scim_rules(page_size=10))
    source = ScimSource(rules.source, ScimSettings("https://scim.example.test/v2"), StaticToken("t"),
                        rules.source_attributes())
    source.client = ScimClient(source.client.settings, StaticToken("t"), transport=httpx.MockTransport(endless))
    with pytest.raises(SourceQueryError, match="the read cannot end, so it stops here and nothing is deleted"):
        list(source.records({"page": 10, "total": 60}))
    assert len(served) < 200


@pytest.mark.bad_input
def test_graph_handing_out_the_same_next_link_again_ends_the_read():
    from usersync.sources.entra.graph_client import GraphClient

    client = object.__new__(GraphClient)
    asked = []

    def get(path, params=None):
        asked.append(path)
        return {"value": [{"id": "1"}], "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=A"}

    client.get = get  # type: ignore[method-assign]
    with pytest.raises(SourceQueryError, match="the same @odata.nextLink twice"):
        list(client.pages("users"))
    assert len(asked) == 2


@pytest.mark.bad_input
def test_an_ldap_server_handing_out_the_same_cookie_again_ends_the_read():
    from usersync.sources.ldap.directory import PAGED_RESULTS, LdapDirectory

    class Looping:
        response = [{"type": "searchResEntry", "dn": "CN=a,DC=x", "raw_attributes": {}, "attributes": {}}]
        result = {"description": "success", "controls": {PAGED_RESULTS: {"value": {"cookie": b"same"}}}}
        searches = 0

        def search(self, *args, **kwargs):
            self.searches += 1

    directory = object.__new__(LdapDirectory)
    directory.conn, directory.url, directory.searches, directory.entries = Looping(), "ldaps://x", 0, 0
    with pytest.raises(SourceQueryError, match="same paged-results cookie twice"):
        list(directory.search("DC=x", "(objectClass=*)", ["cn"]))
    assert directory.conn.searches == 2


@pytest.mark.bad_input
def test_a_cucm_that_ignores_skip_ends_the_read_in_words(tmp_path):
    from devtools.tlscerts import make_certs
    from tests.support.axl_server import AxlState, AxlTestServer, cucm_user
    from tests.test_cucm_source import _rules
    from usersync.sources.cucm.reader import AxlSettings, CucmSource

    certs = make_certs(tmp_path / "tls")
    state = AxlState(users=[cucm_user(i) for i in range(30)], ignore_skip=True)
    server = AxlTestServer(state, str(certs.cert), str(certs.key)).start()
    try:
        rules = _rules(page_size=10)
        settings = AxlSettings("127.0.0.1", state.login, state.password, port=server.port, ca_certs_file=str(certs.ca))
        with CucmSource(rules.source, settings, rules.source_attributes()) as source, \
                pytest.raises(SourceQueryError, match="it ignores skip, so the read cannot end"):
            list(source.records(source.check()))
        assert len(state.requests) == 3  # check, the first page, the same page again
    finally:
        server.stop()

