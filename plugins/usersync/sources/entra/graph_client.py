"""A small Microsoft Graph client for reading users: OAuth 2.0 client credentials through MSAL (which caches the
token until it expires and renews it), requests through the shared HTTP core (429 / 503 wait ``Retry-After``;
401 renews the token once; an answer that is not JSON fails naming the URL), paging by ``@odata.nextLink``, and
any other error said with Graph's own ``code`` and ``message``.

Secrets never appear in messages: MSAL holds the credential, and URLs carry no secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from usersync.core.connection import ConnectionFields
from usersync.sources.errors import SourceAuthError, SourceError, SourceQueryError, SourceUnreachable
from usersync.sources.http import MAX_RESPONSE_MB, BearerAuth, HttpSettings, JsonHttp, max_response_bytes, secure_url

log = logging.getLogger(__name__)
GRAPH = "https://graph.microsoft.com"
AUTHORITY_HOST = "https://login.microsoftonline.com"


class GraphError(SourceQueryError):
    """Graph answered with an error: ``status``, ``code`` and ``message`` as Graph sent them."""

    def __init__(self, status: int, code: str, message: str, url: str):
        super().__init__(f"Microsoft Graph answered {status} {code}: {message} ({url})")
        self.status, self.code, self.graph_message = status, code, message


class DeltaExpired(GraphError):
    """The delta link can no longer be followed: Graph answered ``resyncRequired``, ``syncStateNotFound`` or
    ``syncStateInvalid`` (with 410 Gone or 400 Bad Request alike), or any 410. The answer: read in full."""


#: Graph's error codes that mean "start the delta enumeration again", whatever the HTTP status
RESYNC_CODES = frozenset({"resyncrequired", "syncstatenotfound", "syncstateinvalid"})


@dataclass(frozen=True)
class GraphSettings:
    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    #: certificate credential instead of a secret: PEM private key and the certificate's SHA-1 thumbprint
    certificate_key: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    authority_host: str = AUTHORITY_HOST
    graph_url: str = GRAPH
    #: the resource the token is for (national clouds have their own; a Graph proxy keeps Microsoft's)
    scope: str = f"{GRAPH}/.default"
    ca_certs_file: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    max_wait: float = 120.0
    max_response_bytes: int = int(MAX_RESPONSE_MB * 2**20)
    #: seconds to wait before asking again for changed users a replica does not show yet (one try per wait)
    reread_waits: tuple[float, ...] = (2.0, 5.0, 10.0)


def graph_settings(conn: ConnectionFields) -> GraphSettings:
    """Connection fields: host = the tenant id (GUID or ``contoso.onmicrosoft.com``), login = the app's client
    id, password = its client secret. A certificate instead of a secret: extras ``certificate_key_file`` (PEM
    private key) and ``certificate_thumbprint``. Other extras: ``authority_host`` (national clouds),
    ``graph_url``, ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait`` (s, the
    longest Retry-After honoured), ``reread_waits`` (s, comma-separated: the waits before asking again for
    changed users Graph does not return yet; default 2,5,10)."""
    extra = conn.extra
    if not conn.host or not conn.login:
        raise SourceError(f"connection {conn.conn_id!r} needs the tenant id (host) and the client id (login)")
    key = None
    if extra.get("certificate_key_file"):
        try:
            key = Path(extra["certificate_key_file"]).read_text()
        except OSError as exc:
            raise SourceError(f"connection {conn.conn_id!r}: cannot read certificate_key_file: {exc}") from None
    if not conn.password and not key:
        raise SourceError(f"connection {conn.conn_id!r} needs a client secret (password) or a certificate")
    return GraphSettings(
        tenant_id=conn.host, client_id=conn.login, client_secret=conn.password or None,
        certificate_key=key, certificate_thumbprint=extra.get("certificate_thumbprint"),
        authority_host=secure_url(extra.get("authority_host") or AUTHORITY_HOST, conn.conn_id, extra, "authority_host"),
        graph_url=secure_url(extra.get("graph_url") or GRAPH, conn.conn_id, extra, "graph_url"),
        ca_certs_file=extra.get("ca_certs_file") or None, timeout=float(extra.get("timeout", 60)),
        max_retries=int(extra.get("max_retries", 5)), max_wait=float(extra.get("max_wait", 120)),
        reread_waits=_waits(conn.conn_id, extra.get("reread_waits", "2,5,10")),
        max_response_bytes=max_response_bytes(extra),
    )


def _waits(conn_id: str, text: Any) -> tuple[float, ...]:
    try:
        waits = tuple(float(w) for w in str(text).split(",") if w.strip())
    except ValueError:
        raise SourceError(f"connection {conn_id!r}: reread_waits {text!r} is not a comma-separated list of "
                          "seconds") from None
    if any(w < 0 for w in waits):
        raise SourceError(f"connection {conn_id!r}: reread_waits {text!r} has a negative wait")
    return waits


class GraphClient:
    def __init__(self, settings: GraphSettings, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self.sleep = sleep
        self._app = None
        http = HttpSettings(settings.ca_certs_file, settings.timeout, settings.max_retries, settings.max_wait,
                            settings.max_response_bytes)
        self.http = JsonHttp("Microsoft Graph", http, BearerAuth(self, "Microsoft Graph"), sleep, transport)

    # --- the token -----------------------------------------------------------------------------------------

    def _msal(self):
        if self._app is None:
            import msal
            import requests

            s = self.settings
            credential: Any = s.client_secret
            if s.certificate_key:
                credential = {"private_key": s.certificate_key, "thumbprint": s.certificate_thumbprint}
            if not credential:
                raise SourceAuthError("the Entra ID connection has neither a client secret nor a certificate")
            session = _Verifying(requests.Session(), s.ca_certs_file or True)
            try:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id, client_credential=credential,
                    authority=f"{s.authority_host.rstrip('/')}/{s.tenant_id}",
                    http_client=session, instance_discovery=s.authority_host == AUTHORITY_HOST,
                    validate_authority=s.authority_host == AUTHORITY_HOST,
                )
            except ValueError as exc:  # MSAL's discovery: unknown tenant, unreachable authority
                raise SourceAuthError(f"Entra ID tenant {s.tenant_id!r} at {s.authority_host}: {exc}") from None
            except requests.RequestException as exc:
                raise SourceUnreachable(f"cannot reach {s.authority_host}: {type(exc).__name__}: {exc}") from None
        return self._app

    def token(self, renew: bool = False) -> str:
        import requests

        app = self._msal()
        if renew:
            app.remove_tokens_for_client()
        try:
            answer = app.acquire_token_for_client(scopes=[self.settings.scope])
        except requests.RequestException as exc:
            raise SourceUnreachable(f"cannot reach {self.settings.authority_host}: {type(exc).__name__}: {exc}") from None
        if "access_token" not in answer:
            description = (answer.get("error_description") or "").split(" Trace ID:")[0]
            raise SourceAuthError(f"Entra ID refused the client credentials of app {self.settings.client_id} in "
                                  f"tenant {self.settings.tenant_id}: {answer.get('error')}: {description}")
        return answer["access_token"]

    # --- requests ------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The URL for ``path``; an absolute link (a next or delta link) only if it names the configured Graph
        host: the bearer token goes nowhere else, whatever a page or a stored link says."""
        if not (path.startswith("https://") or path.startswith("http://")):
            return f"{self.settings.graph_url.rstrip('/')}/{path.lstrip('/')}"
        if origin(path) != origin(self.settings.graph_url):
            scheme, host, port = origin(path)
            raise SourceQueryError(
                f"Microsoft Graph handed out a link to {scheme}://{host}:{port}, not to the configured Graph host "
                f"{self.settings.graph_url}; the access token is sent to that host only, so the read stops here "
                "(a proxy rewriting links, or a tampered stored delta link?)")
        return path

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A POST that only reads (e.g. ``checkMemberGroups``), with the same retries and token renewal."""
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: dict[str, Any]) -> None:
        """An update (``PATCH``): Graph answers 204 No Content; errors, retries and renewal as for reads."""
        self.request("PATCH", path, body=body)

    def request(self, method: str, path: str, params: dict[str, str] | None = None,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.url(path)
        answer = self.http.send(method, url, params=params, json=body)
        if answer.status_code == 204:  # an update's answer: nothing to read
            return {}
        return _json(self.http, answer, url)

    def pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink`` (which carries the query itself)."""
        page = self.get(path, params)
        yield page
        followed: set[str] = set()
        while page.get("@odata.nextLink"):
            link = page["@odata.nextLink"]
            if link in followed:  # a server that hands out a link it already gave: the read would never end
                raise SourceQueryError(f"Microsoft Graph answered the same @odata.nextLink twice ({path}); the read "
                                       "cannot end, so it stops here and nothing is deleted")
            followed.add(link)
            page = self.get(link)
            yield page

    def close(self) -> None:
        self.http.close()


class _Verifying:
    """A requests session for MSAL that always checks certificates against ``verify`` (requests lets
    ``REQUESTS_CA_BUNDLE`` override a session's own setting; an explicit per-request ``verify`` wins)."""

    def __init__(self, session, verify):
        self.session, self.verify = session, verify

    def get(self, *args, **kwargs):
        return self.session.get(*args, **{**kwargs, "verify": self.verify})

    def post(self, *args, **kwargs):
        return self.session.post(*args, **{**kwargs, "verify": self.verify})

    def close(self):
        self.session.close()


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port filled in from the scheme: what may receive the token."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _json(http: JsonHttp, answer: httpx.Response, url: str) -> dict[str, Any]:
    body = http.json_of(answer, url)
    if answer.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code", "unknown") if isinstance(error, dict) else "unknown"
        message = error.get("message", "") if isinstance(error, dict) else str(body)[:200]
        kind = DeltaExpired if answer.status_code == 410 or code.lower() in RESYNC_CODES else GraphError
        if answer.status_code == 401:
            raise SourceAuthError(f"Microsoft Graph refused the token after renewing it: {code}: {message}")
        raise kind(answer.status_code, code, message, url)
    if not isinstance(body, dict) or not isinstance(body.get("value", []), list):
        raise SourceQueryError(f"Microsoft Graph answered JSON without a 'value' list at {url}")
    return body
