"""A small SCIM 2.0 client for reading users: a bearer token (a static one, or one renewed from an OAuth refresh
token — ``tokens``), requests through httpx with the connection's CA bundle, and the protocol's failure modes:

- 429 and 503 wait ``Retry-After`` seconds (bounded: ``max_retries`` tries, ``max_wait`` seconds each);
- 401 renews the token once, then fails;
- an error answers with SCIM's error body (RFC 7644 §3.12: ``status``, ``scimType``, ``detail``), said in words;
  an answer that is not JSON fails naming the URL (a proxy's login page, a gateway error).

Secrets never appear in messages: the token is only ever sent in the Authorization header.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from usersync.core.connection import ConnectionFields
from usersync.sources.errors import SourceAuthError, SourceError, SourceQueryError, SourceUnreachable
from usersync.sources.http import MAX_RESPONSE_MB, max_response_bytes, read_capped, retry_after, secure_url

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


class Tokens(Protocol):
    """Where bearer tokens come from: ``token(renew)`` — a fresh one when ``renew``."""

    def token(self, renew: bool = False) -> str: ...


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


def scim_settings(conn: ConnectionFields, base_url: str | None = None) -> ScimSettings:
    """Connection fields: host = the base URL (``https://scim.example.com/scim/v2``); extras ``ca_certs_file``,
    ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait`` (s, the longest Retry-After honoured)."""
    url = base_url or conn.host
    if not url or not url.lower().startswith(("https://", "http://")):
        raise SourceError(f"connection {conn.conn_id!r}: host must be the SCIM base URL (https://…/v2), not {url!r}")
    extra = conn.extra
    secure_url(url, conn.conn_id, extra, "the SCIM base URL")
    return ScimSettings(base_url=url.rstrip("/"), ca_certs_file=extra.get("ca_certs_file") or None,
                        timeout=float(extra.get("timeout", 60)), max_retries=int(extra.get("max_retries", 5)),
                        max_wait=float(extra.get("max_wait", 120)), max_response_bytes=max_response_bytes(extra))


class ScimClient:
    def __init__(self, settings: ScimSettings, tokens: Tokens, sleep: Callable[[float], None] = time.sleep):
        self.settings, self.tokens, self.sleep = settings, tokens, sleep
        verify: Any = ssl.create_default_context(cafile=settings.ca_certs_file) if settings.ca_certs_file else True
        self._http = httpx.Client(timeout=settings.timeout, verify=verify)
        self.requests = 0
        self.waited = 0.0
        self.http_seconds = 0.0  # time spent waiting on the provider (the benchmark's "share spent on HTTP")

    def url(self, path: str) -> str:
        return f"{self.settings.base_url}/{path.lstrip('/')}"

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url, renewed, tries = self.url(path), False, 0
        token = self.tokens.token()
        while True:
            tries += 1
            self.requests += 1
            started = time.perf_counter()
            try:
                with self._http.stream("GET", url, params=params,
                                       headers={"Authorization": f"Bearer {token}",
                                                "Accept": f"{SCIM_JSON}, application/json"}) as answer:
                    read_capped(answer, self.settings.max_response_bytes, url)
            except httpx.TimeoutException:
                raise SourceUnreachable(f"the SCIM provider did not answer within {self.settings.timeout:g} s ({url})") from None
            except httpx.HTTPError as exc:
                raise SourceUnreachable(f"cannot reach the SCIM provider at {url}: {type(exc).__name__}: {exc}") from None
            finally:
                self.http_seconds += time.perf_counter() - started
            if answer.status_code in (429, 503) and tries <= self.settings.max_retries:
                wait = min(retry_after(answer), self.settings.max_wait)
                log.warning("the SCIM provider answered %d (throttled); waiting %.0f s as Retry-After says (try %d of %d)",
                            answer.status_code, wait, tries, self.settings.max_retries + 1)
                self.waited += wait
                self.sleep(wait)
                continue
            if answer.status_code == 401 and not renewed:
                log.info("the SCIM provider refused the token (401): renewing it once")
                token, renewed = self.tokens.token(renew=True), True
                continue
            return _json(answer, url)

    def close(self) -> None:
        self._http.close()


def _json(answer: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        raise SourceQueryError(f"the SCIM provider answered {answer.status_code} with something that is not JSON "
                               f"({answer.headers.get('content-type', 'no content type')}; a proxy or gateway in "
                               f"between?) at {url}: {answer.text[:120]!r}") from None
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
