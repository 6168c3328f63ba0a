"""A small SCIM 2.0 client for reading users: a bearer token (a static one, or one renewed from an OAuth refresh
token — ``tokens``) through the shared HTTP core (429 / 503 wait ``Retry-After``; 401 renews the token once; an
answer that is not JSON fails naming the URL), and SCIM's error body (RFC 7644 §3.12: ``status``, ``scimType``,
``detail``) said in words.

Secrets never appear in messages: the token is only ever sent in the Authorization header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from usersync.core.connection import ConnectionFields
from usersync.sources.errors import SourceAuthError, SourceError, SourceQueryError
from usersync.sources.http import MAX_RESPONSE_MB, BearerAuth, HttpSettings, JsonHttp, Tokens, secure_url

log = logging.getLogger(__name__)
SCIM_JSON = "application/scim+json"

#: what RFC 7644 §3.12's scimType values mean, for the message an admin reads
SCIM_TYPES = {
    "invalidfilter": "the filter is not valid SCIM filter syntax, or names an attribute the provider does not filter on",
    "toomany": "the provider would return too many results for this request; narrow the filter",
    "invalidpath": "an attribute path is not valid for this provider",
    "invalidsyntax": "the request is not valid SCIM",
    "invalidvalue": "a value in the request is not valid",
    "sensitive": "the request puts information in the URL the provider refuses there",
}


class ScimError(SourceQueryError):
    """The provider answered with an error: ``status``, ``scim_type`` and ``detail`` as it sent them."""

    def __init__(self, status: int, scim_type: str | None, detail: str, url: str):
        meaning = SCIM_TYPES.get((scim_type or "").lower())
        super().__init__(f"the SCIM provider answered {status}{f' {scim_type}' if scim_type else ''}: {detail}"
                         f"{f' ({meaning})' if meaning else ''} — {url}")
        self.status, self.scim_type, self.detail = status, scim_type, detail


@dataclass
class StaticToken:
    """A long-lived bearer token from the connection (an API token of the provider)."""

    value: str = field(repr=False)

    def token(self, renew: bool = False) -> str:
        if renew:
            raise SourceAuthError("the SCIM provider refused the connection's bearer token (401): it is wrong, expired "
                                  "or revoked; put a valid token in the connection's password")
        return self.value


@dataclass(frozen=True)
class ScimSettings:
    base_url: str  # up to and including the version, e.g. https://webexapis.com/identity/scim/<org>/v2
    ca_certs_file: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    max_wait: float = 120.0
    max_response_bytes: int = int(MAX_RESPONSE_MB * 2**20)

    @property
    def http(self) -> HttpSettings:
        return HttpSettings(self.ca_certs_file, self.timeout, self.max_retries, self.max_wait, self.max_response_bytes)


def scim_settings(conn: ConnectionFields, base_url: str | None = None) -> ScimSettings:
    """Connection fields: host = the base URL (``https://scim.example.com/scim/v2``); extras ``ca_certs_file``,
    ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait`` (s, the longest Retry-After honoured)."""
    url = base_url or conn.host
    if not url or not url.lower().startswith(("https://", "http://")):
        raise SourceError(f"connection {conn.conn_id!r}: host must be the SCIM base URL (https://…/v2), not {url!r}")
    extra = conn.extra
    secure_url(url, conn.conn_id, extra, "the SCIM base URL")
    http = HttpSettings.from_extra(extra)
    return ScimSettings(url.rstrip("/"), http.ca_certs_file, http.timeout, http.max_retries, http.max_wait,
                        http.max_response_bytes)


class ScimClient:
    """GET requests to one SCIM provider, through the shared HTTP core (``usersync.sources.http``)."""

    def __init__(self, settings: ScimSettings, tokens: Tokens, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        self.settings, self.tokens = settings, tokens
        self.http = JsonHttp("the SCIM provider", settings.http, BearerAuth(tokens, "the SCIM provider"), sleep,
                             transport)

    def url(self, path: str) -> str:
        return f"{self.settings.base_url}/{path.lstrip('/')}"

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = self.url(path)
        answer = self.http.send("GET", url, params=params, headers={"Accept": f"{SCIM_JSON}, application/json"})
        return _json(self.http, answer, url)

    def close(self) -> None:
        self.http.close()


def _json(http: JsonHttp, answer: httpx.Response, url: str) -> dict[str, Any]:
    body = http.json_of(answer, url)
    if answer.status_code >= 400:
        body = body if isinstance(body, dict) else {}
        detail = str(body.get("detail") or body.get("message") or answer.reason_phrase)
        if answer.status_code == 401:
            raise SourceAuthError(f"the SCIM provider refused the token after renewing it (401): {detail} — {url}")
        if answer.status_code == 403:
            raise SourceAuthError(f"the SCIM provider refused to list users for this token (403): {detail}; the token "
                                  f"lacks the read scope or the admin role — {url}")
        raise ScimError(answer.status_code, body.get("scimType"), detail, url)
    if not isinstance(body, dict):
        raise SourceQueryError(f"the SCIM provider answered JSON that is not an object at {url}")
    return body
