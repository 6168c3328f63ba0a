"""The one HTTP core under Graph, SCIM and Webex (fast lane, httpx's MockTransport as the wire): the bearer token
renewed once on 401, throttling waited out as Retry-After says within bounds and counted, answers that are not
JSON said in words — the same for every client built on it."""

from __future__ import annotations

import httpx
import pytest

from usersync.core.connection import ConnectionFields
from usersync.sources.entra.graph_client import GraphClient, GraphSettings
from usersync.sources.errors import SourceAuthError, SourceQueryError, SourceUnreachable
from usersync.sources.http import BearerAuth, HttpSettings, JsonHttp
from usersync.sources.scim.client import ScimClient, ScimError, ScimSettings
from usersync.sources.scim.webex import RefreshingToken


class Counted:
    """Tokens numbered by issue: ``t1``, then ``t2`` after a renewal."""

    def __init__(self):
        self.issued = 0

    def token(self, renew: bool = False) -> str:
        if renew or not self.issued:
            self.issued += 1
        return f"t{self.issued}"


def _core(handler, tokens=None, **settings) -> tuple[JsonHttp, list[float]]:
    slept: list[float] = []
    auth = BearerAuth(tokens, "the test API") if tokens else None
    return JsonHttp("the test API", HttpSettings(**settings), auth, slept.append, httpx.MockTransport(handler)), slept


def test_a_401_renews_the_token_once_and_sends_again():
    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if len(seen) == 1 else 200, json={"ok": True})

    tokens = Counted()
    http, _ = _core(handler, tokens)
    answer = http.send("GET", "https://api.example.test/x")
    assert answer.status_code == 200 and seen == ["Bearer t1", "Bearer t2"] and tokens.issued == 2


def test_a_second_401_is_handed_back_not_renewed_again():
    http, _ = _core(lambda request: httpx.Response(401, json={}), Counted())
    assert http.send("GET", "https://api.example.test/x").status_code == 401
    assert http.requests == 2


def test_throttling_waits_retry_after_within_max_wait_and_counts():
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503, headers={"Retry-After": "900"}),
                    httpx.Response(503), httpx.Response(200, json={})])
    http, slept = _core(lambda request: next(answers), max_wait=30)
    assert http.send("GET", "https://api.example.test/x").status_code == 200
    assert slept == [7.0, 30.0, 10.0]  # as asked; capped at max_wait; no header: 10 s
    assert (http.requests, http.waited) == (4, 47.0)


def test_throttling_past_max_retries_hands_the_answer_back():
    http, slept = _core(lambda request: httpx.Response(429, headers={"Retry-After": "1"}), max_retries=2)
    assert http.send("GET", "https://api.example.test/x").status_code == 429 and slept == [1.0, 1.0]


def test_no_connection_and_not_json_are_said_in_words():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    http, _ = _core(refuse)
    with pytest.raises(SourceUnreachable, match="cannot reach the test API at https://api.example.test/x: ConnectError"):
        http.send("GET", "https://api.example.test/x")
    http, _ = _core(lambda request: httpx.Response(502, text="<html>Bad gateway</html>",
                                                   headers={"content-type": "text/html"}))
    answer = http.send("GET", "https://api.example.test/x")
    with pytest.raises(SourceQueryError, match=r"answered 502 with something that is not JSON \(text/html"):
        http.json_of(answer, "https://api.example.test/x")


def test_scim_and_graph_share_the_core_and_say_their_own_errors():
    def scim(request):
        if request.headers["Authorization"] == "Bearer t1":
            return httpx.Response(401, json={"detail": "expired"})
        return httpx.Response(400, json={"status": "400", "scimType": "invalidFilter", "detail": "bad filter"})

    client = ScimClient(ScimSettings("https://scim.example.test/v2"), Counted(), transport=httpx.MockTransport(scim))
    with pytest.raises(ScimError, match="invalidFilter: bad filter"):
        client.get("Users")
    assert client.http.requests == 2

    graph = GraphClient(GraphSettings("tenant", "app", "secret"), sleep=lambda s: None,
                        transport=httpx.MockTransport(lambda request: httpx.Response(401, json={
                            "error": {"code": "InvalidAuthenticationToken", "message": "expired"}})))
    tokens = Counted()
    graph.token = tokens.token  # type: ignore[method-assign]  # the MSAL side is Entra's, not the core's
    with pytest.raises(SourceAuthError, match="refused the token after renewing it: InvalidAuthenticationToken"):
        graph.get("v1.0/users")
    assert graph.http.requests == 2 and tokens.issued == 2


def test_the_webex_token_renewal_goes_through_the_same_core():
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}),
                    httpx.Response(200, json={"access_token": "a1", "expires_in": 3600, "refresh_token": "r2"})])
    kept = {}
    conn = ConnectionFields("webex", host="https://webex.example.test", login="id", password="secret",
                            extra={"org_id": "o", "refresh_token": "r1"}, keep=lambda name, value: kept.update({name: value}))
    tokens = RefreshingToken.from_connection(conn)
    tokens.transport = httpx.MockTransport(lambda request: next(answers))
    assert tokens.token() == "a1" and kept == {"refresh_token": "r2"}


def test_the_environments_proxies_are_used_behind_the_retry_layer(monkeypatch):
    """HTTPS_PROXY and NO_PROXY apply as httpx applies them on its own — and the proxied route is throttled and
    counted like a direct one (a proxy on a closed loopback port: the request goes there, nowhere else)."""
    from devtools.netutil import free_port
    from usersync.sources.http import Throttled

    proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "localhost")
    http = JsonHttp("the test API", HttpSettings(max_retries=0), sleep=lambda s: None)
    assert isinstance(http.mounts["https://"], Throttled) and http.mounts["all://localhost"] is None
    with pytest.raises(SourceUnreachable, match="cannot reach the test API at https://api.example.test/x"):
        http.send("GET", "https://api.example.test/x")
    assert http.requests == 1
