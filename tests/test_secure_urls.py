"""HTTP sources refuse plain ``http://`` URLs (a bearer token or client secret would go in clear) unless the
connection says it is a test lab (``insecure_http: true``); no server needed."""

from __future__ import annotations

import pytest

from usersync.core.connection import ConnectionFields
from usersync.sources.entra.graph_client import graph_settings
from usersync.sources.errors import SourceError
from usersync.sources.scim.client import scim_settings
from usersync.sources.scim.webex import RefreshingToken, webex_settings


def _conn(**fields) -> ConnectionFields:
    return ConnectionFields(**{"conn_id": "c1", "login": "app", "password": "Very-Secret-1", **fields})


@pytest.mark.bad_input
@pytest.mark.parametrize("settings", [
    lambda extra: scim_settings(_conn(host="http://scim.example.com/v2", extra=extra)),
    lambda extra: webex_settings(_conn(host="http://webex.example.com", extra={"org_id": "o1", **extra})),
    lambda extra: RefreshingToken(_conn(host="http://webex.example.com", extra=extra), "r").url,
    lambda extra: graph_settings(_conn(host="tenant", extra={"graph_url": "http://graph.example.com", **extra})),
    lambda extra: graph_settings(_conn(host="tenant", extra={"authority_host": "http://login.example.com", **extra})),
], ids=["scim", "webex", "webex-token", "graph", "authority"])
def test_plain_http_is_refused_unless_a_test_lab_says_so(settings):
    with pytest.raises(SourceError, match="is plain http://, so its token would be sent in clear") as refused:
        settings({})
    assert "connection 'c1'" in str(refused.value) and "Very-Secret-1" not in str(refused.value)
    with pytest.raises(SourceError, match="plain http://"):
        settings({"insecure_http": "yes"})  # only the JSON value true counts
    assert settings({"insecure_http": True})


def test_https_needs_no_switch():
    assert scim_settings(_conn(host="https://scim.example.com/v2", extra={})).base_url == "https://scim.example.com/v2"
