"""A protocol-faithful test server for what Cisco Webex Control Hub adds to SCIM 2.0, real HTTPS on loopback with a
test CA. No Cisco code or data is used; behaviour follows Webex's public API reference (SCIM 2 Users, Authentication
/ integrations):

- ``POST /v1/access_token`` (form-encoded): ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
  ``refresh_token`` → ``access_token``, ``expires_in``, ``refresh_token``, ``refresh_token_expires_in``; an
  unknown, revoked or expired refresh token is refused (400 ``invalid_grant``). ``rotate``: each renewal hands out a
  new refresh token and the old one stops working.
- ``GET /identity/scim/{orgId}/v2/Users``: a SCIM ListResponse (``startIndex`` / ``count`` ≤ 1,000,
  ``totalResults``, ``attributes`` projection by attribute name or schema URN), users with the core, enterprise
  and Cisco (``urn:scim:schemas:extension:cisco:webexidentity:2.0:User``: ``accountStatus``, ``sipAddresses``,
  ``meta.organizationId``) schemas; ``phoneNumbers`` of types ``work``, ``work_extension``, ``mobile``. 401 with
  Webex's error body (``message``, ``errors``, ``trackingId``) for a missing or expired token; 404 for another
  organisation; 429 with ``Retry-After``, injectable.
- ``GET /identity/scim/{orgId}/v2/ServiceProviderConfig``.

Not reproduced: scopes and admin roles beyond "a valid token of this organisation"; filters (the preset reads
every user); Webex's own page-size choice when ``count`` is absent (100 here).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.tls_server import TlsServer

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CISCO = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"
MAX_COUNT = 1000


def webex_user(i: int, org: str, **overrides: Any) -> dict[str, Any]:
    user: dict[str, Any] = {
        "schemas": [CORE, ENTERPRISE, CISCO],
        "id": str(uuid.UUID(int=0xBEE << 112 | i)),
        "userName": f"agent{i:05d}@acme.example",
        "active": i % 17 != 5,
        "name": {"givenName": ["Ana", "Björn", "Chloé"][i % 3], "familyName": f"Agent{i}"},
        "displayName": f"Agent {i}",
        "emails": [{"value": f"agent{i:05d}@acme.example", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": f"+1 408 555 {i:04d}", "type": "work", "primary": True},
                         {"value": str(5000 + i), "type": "work_extension"},
                         {"value": f"+1 650 555 {i:04d}", "type": "mobile"}],
        "userType": "user",
        ENTERPRISE: {"department": ["Support", "Sales"][i % 2]},
        CISCO: {"accountStatus": ["active"], "meta": {"organizationId": org},
                "sipAddresses": [{"value": f"agent{i:05d}@acme.calls.webex.com", "type": "enterprise", "primary": True}]},
        "meta": {"resourceType": "User"},
    }
    user.update(overrides)
    return user


@dataclass
class Org:
    org_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: "C" + secrets.token_hex(16))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    refresh_tokens: set[str] = field(default_factory=set)
    rotate: bool = False
    token_lifetime: int = 1_209_600  # 14 days
    users: list[dict[str, Any]] = field(default_factory=list)
    throttle: list[int] = field(default_factory=list)  # Retry-After seconds of the next 429s on /Users
    requests: list[tuple[str, str]] = field(default_factory=list)
    renewals: int = 0

    def __post_init__(self) -> None:
        self.access: dict[str, float] = {}
        self.lock = threading.Lock()

    def new_refresh_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self.refresh_tokens.add(token)
        return token

    def expire_access_tokens(self) -> None:
        self.access = {t: 0.0 for t in self.access}


class _Handler(BaseHTTPRequestHandler):
    server: WebexServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    @property
    def org(self) -> Org:
        return self.server.org

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if "schemas" not in body else "application/scim+json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _webex_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"message": message, "errors": [{"description": message}],
                            "trackingId": f"ROUTER_{uuid.uuid4().hex[:12].upper()}"}, headers)

    def do_POST(self) -> None:  # noqa: N802
        self.org.requests.append(("POST", self.path))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()).items()}
        if urlsplit(self.path).path != "/v1/access_token":
            return self._webex_error(404, "The requested resource could not be found.")
        o = self.org
        if form.get("grant_type") != "refresh_token":
            return self._send(400, {"error": "unsupported_grant_type", "error_description": "Only refresh_token here."})
        if form.get("client_id") != o.client_id or form.get("client_secret") != o.client_secret:
            return self._send(401, {"error": "invalid_client", "error_description": "Invalid client id or secret."})
        with o.lock:
            if form.get("refresh_token") not in o.refresh_tokens:
                return self._send(400, {"error": "invalid_grant",
                                        "error_description": "The refresh token provided is expired, revoked, malformed, "
                                                             "or invalid."})
            refresh = form["refresh_token"]
            if o.rotate:
                o.refresh_tokens.discard(refresh)
                refresh = o.new_refresh_token()
            access = secrets.token_urlsafe(32)
            o.access[access] = time.time() + o.token_lifetime
            o.renewals += 1
        self._send(200, {"access_token": access, "expires_in": o.token_lifetime, "refresh_token": refresh,
                         "refresh_token_expires_in": 7_776_000, "token_type": "Bearer"})

    def do_GET(self) -> None:  # noqa: N802
        self.org.requests.append(("GET", self.path))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        m = re.fullmatch(r"/identity/scim/([^/]+)/v2/(Users|ServiceProviderConfig)", parts.path)
        if not m:
            return self._webex_error(404, "The requested resource could not be found.")
        header = self.headers.get("Authorization", "")
        if self.org.access.get(header.removeprefix("Bearer "), 0) < time.time():
            return self._webex_error(401, "The request requires a valid access token set in the Authorization request "
                                          "header.")
        if m[1] != self.org.org_id:
            return self._webex_error(404, f"Organization {m[1]} not found or not accessible.")
        if m[2] == "ServiceProviderConfig":
            return self._send(200, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                                    "filter": {"supported": True, "maxResults": MAX_COUNT},
                                    "patch": {"supported": True}, "bulk": {"supported": False},
                                    "sort": {"supported": False}, "etag": {"supported": False}})
        if self.org.throttle:
            return self._webex_error(429, "Too many requests.", {"Retry-After": str(self.org.throttle.pop(0))})
        start = max(int(query.get("startIndex", "1")), 1)
        count = min(max(int(query.get("count", "100")), 0), MAX_COUNT)
        page = self.org.users[start - 1:start - 1 + count]
        wanted = [a.strip() for a in query.get("attributes", "").split(",") if a.strip()]
        self._send(200, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                         "totalResults": len(self.org.users), "itemsPerPage": len(page), "startIndex": start,
                         "Resources": [_project(u, wanted) for u in page]})


def _project(user: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """``attributes=``: the named attributes (``name.givenName`` keeps ``name``; ``urn:…:User:x`` keeps that
    extension's ``x``), plus ``id`` and ``schemas``, which are always returned."""
    if not wanted:
        return user
    out: dict[str, Any] = {"id": user["id"], "schemas": user["schemas"]}
    for attribute in wanted:
        urn = next((s for s in (ENTERPRISE, CISCO) if attribute.startswith(s + ":")), None)
        if urn:
            name = attribute[len(urn) + 1:].split(".")[0]
            if name in user.get(urn, {}):
                out.setdefault(urn, {})[name] = user[urn][name]
        else:
            top = attribute.split(".")[0]
            if top in user:
                out[top] = user[top]
    return out


class WebexServer(TlsServer):
    """``WebexServer(org, cert, key).start()``: the Webex token endpoint and the organisation's SCIM API."""

    def __init__(self, org: Org, certfile: str, keyfile: str):
        self.org = org
        super().__init__(_Handler, certfile, keyfile)
