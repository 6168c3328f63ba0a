"""A protocol-faithful Microsoft Graph + Microsoft identity platform test server, real HTTPS on loopback with a
test CA. No Microsoft code or data is used; behaviour follows Microsoft's public documentation:

- identity platform, client-credentials flow ("Microsoft identity platform and the OAuth 2.0 client credentials
  flow"): ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` and ``scope=https://graph.microsoft.com/.default``; errors as ``{"error", "error_description",
  "error_codes"}`` (AADSTS7000215 invalid secret, AADSTS700016 unknown application, AADSTS90002 unknown tenant,
  AADSTS70011 invalid scope); ``/{tenant}/v2.0/.well-known/openid-configuration`` for discovery (as MSAL reads it).
- Graph ``GET /v1.0/users`` ("List users", "Use query parameters", "Paging Microsoft Graph data in your app"):
  ``$select`` projection (``id`` always returned), ``$top`` 1–999 (else 400 ``Request_UnsupportedQuery``),
  ``@odata.nextLink`` with an opaque ``$skiptoken`` that carries the query, ``$filter`` (a documented subset:
  ``eq`` on strings and booleans, ``startswith``, ``id in (…)``, joined by ``and``).
- ``GET /v1.0/users/{id | userPrincipalName}`` ("Get user"): one user, 404 ``Request_ResourceNotFound`` when
  none; ``POST /v1.0/users/{id}/checkMemberGroups`` ("user: checkMemberGroups"): which of up to 20 groups the
  user is a member of, directly or transitively.
- ``GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`` ("List group transitive members", OData cast):
  users of nested groups included, 404 ``Request_ResourceNotFound`` for an unknown group.
- delta ("Use delta query to track changes", "delta query users"): ``GET /v1.0/users/delta`` pages of the current
  state, ``@odata.deltaLink`` with ``$deltatoken`` on the last page (never both links on one page); with the token:
  only users changed since, **updated users with ``id`` and the changed properties only**, deleted ones as
  ``{"id", "@removed": {"reason": "changed"}}``, and **a user changed several times listed once per change**
  ("A single entity can be contained multiple times in the response, if that entity was changed multiple
  times"); an expired token → HTTP 410 ``syncStateNotFound`` ("The sync state generation is not found…", the
  Microsoft 365 dev blog on delta-link lifetime); ``resyncRequired`` injectable with any status.
- paging while the directory changes: a user changed after a page listed it is listed again, with its new state,
  on a later page of the same read (an entity "can be contained multiple times").
- replication ("eventual consistency"): an id can be held back from the next ``id in (…)`` reads, as a replica
  that has not seen a just-changed object yet.
- guests (B2B): ``userType`` ``Guest`` and ``#EXT#`` UPNs (``guest_user``).
- ``PATCH /v1.0/users/{id}`` ("Update user"): a JSON body of writable properties, ``businessPhones`` a list of
  at most one number, ``onPremisesExtensionAttributes`` merged; **204 No Content**; 403
  ``Authorization_RequestDenied`` "Insufficient privileges to complete the operation." for an app without an
  update permission; 400 for contact numbers and extension attributes of a user synced from on-premises AD
  (``onPremisesSyncEnabled``), as Graph refuses them; throttling as for reads.
- errors as ``{"error": {"code", "message", "innerError"}}`` ("Microsoft Graph error responses"); 401
  ``InvalidAuthenticationToken`` for a missing or expired token; throttling ("Microsoft Graph throttling
  guidance") as 429 ``TooManyRequests`` or 503 with ``Retry-After`` (seconds), injectable.

Not reproduced: see ``NOT_REPRODUCED`` below (and the README's source table).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.tls_server import TlsServer

SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_PAGE = 100
MAX_PAGE = 999
NOT_REPRODUCED = (
    "certificate revocation and the x5t thumbprint lookup among several uploaded certificates (one is registered)",
    "$count, $search, $orderby, ConsistencyLevel: eventual and the advanced-query rules",
    "delta for groups and $filter on delta (other than the documented id filter)",
    "eventual consistency between replicas other than for the id reads the tests hold back",
    "per-app and per-tenant throttling budgets (throttling is injected, not computed)",
    "national clouds, multi-geo; guests' invitation state (externalUserState)",
    "which admin roles may update whose sensitive properties; JSON batching ($batch); PATCH of properties "
    "other than those in UPDATABLE",
)


#: user properties this server lets an app update (a subset of Graph's), and those Graph keeps for on-premises AD
#: on a user synced from there
UPDATABLE = frozenset({"businessPhones", "mobilePhone", "faxNumber", "officeLocation", "employeeId", "department",
                       "jobTitle", "onPremisesExtensionAttributes"})
ON_PREMISES_MASTERED = frozenset({"businessPhones", "mobilePhone", "onPremisesExtensionAttributes"})


def graph_user(i: int, **overrides) -> dict:
    """A plausible Entra ID user; ``id`` is a stable GUID per ``i``."""
    user = {
        "id": str(uuid.UUID(int=0xE17A << 112 | i)),
        "userPrincipalName": f"user{i:06d}@example.onmicrosoft.com",
        "onPremisesSamAccountName": f"user{i:06d}" if i % 2 else None,
        "givenName": ["Anna", "Marco", "Chiara", "Luca"][i % 4],
        "surname": ["Rossi", "Bianchi", "Brown"][i % 3],
        "displayName": f"User {i}",
        "mail": f"user{i:06d}@example.test",
        "department": ["Sales", "Support", "Engineering"][i % 3],
        "businessPhones": [f"+39 0461 {1000 + i}"] if i % 5 else [],
        "mobilePhone": f"+39 333 {i:07d}" if i % 2 == 0 else None,
        "accountEnabled": True,
        "userType": "Member",
        "onPremisesExtensionAttributes": {f"extensionAttribute{n}": None for n in range(1, 16)},
    }
    user["onPremisesExtensionAttributes"]["extensionAttribute1"] = str(11000 + i)
    user.update(overrides)
    return user


def guest_user(i: int, home: str = "gmail.com", **overrides) -> dict:
    """An invited (B2B) guest: ``userType`` Guest, the UPN ``<mail with _>#EXT#@<tenant domain>``."""
    mail = f"guest{i:04d}@{home}"
    return graph_user(i, userPrincipalName=f"{mail.replace('@', '_')}#EXT#@example.onmicrosoft.com", mail=mail,
                      userType="Guest", onPremisesSamAccountName=None, **overrides)


@dataclass
class Tenant:
    """The directory behind the server, and what tests inject."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_lifetime: int = 3600
    users: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group id → member ids (users or groups)
    throttle: list[tuple[int, int]] = field(default_factory=list)  # (429|503, Retry-After) for the next requests
    garbage: int = 0  # answer the next n Graph requests with HTML
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query) as received
    tokens_issued: int = 0
    certificate_pem: str | None = None  # an uploaded certificate: client assertions must be signed by its key
    list_each_change: bool = True  # a delta round lists a user once per change (False: merged into one entry)
    resync: list[int] = field(default_factory=list)  # answer the next delta-token requests: resyncRequired, status
    lagging: dict[str, int] = field(default_factory=dict)  # id → how many "id in (…)" reads do not see it yet
    link_host: str | None = None  # next links name this base URL instead of the server's own (another host)
    after_page: Callable[[int], None] | None = None  # called after each listing page is served (its number)
    delta_page_size: int = DEFAULT_PAGE  # Graph's own page size on /users/delta
    may_update_users: bool = True  # the app holds User.ReadUpdate.All / User.ReadWrite.All (else 403 on PATCH)
    patches: list[tuple[str, dict]] = field(default_factory=list)  # (path, JSON body) of every PATCH received
    patch_throttle: list[int | None] = field(default_factory=list)  # per PATCH in turn: Retry-After of a 429, or None

    def __post_init__(self):
        self._tokens: dict[str, float] = {}  # access token → expiry (epoch)
        self._seq = 0
        self._changes: list[tuple[int, str, dict | None]] = []  # (seq, user id, changed properties | None: removed)
        self._delta_epoch = 0  # delta tokens of an older epoch are expired
        self._pages: dict[str, dict] = {}
        self.lock = threading.Lock()

    # --- the directory --------------------------------------------------------------------------------------

    def add(self, user: dict) -> str:
        with self.lock:
            self.users[user["id"]] = user
            self._record(user["id"], dict(user))
        return user["id"]

    def update(self, user_id: str, **changes) -> None:
        with self.lock:
            self.users[user_id].update(changes)
            self._record(user_id, dict(changes))

    def delete(self, user_id: str) -> None:
        with self.lock:
            del self.users[user_id]
            self._record(user_id, None)
            for members in self.groups.values():
                if user_id in members:
                    members.remove(user_id)

    def _record(self, user_id: str, changed: dict | None) -> None:
        self._seq += 1
        self._changes.append((self._seq, user_id, changed))

    def expire_delta_tokens(self) -> None:
        """Every delta token handed out so far is now too old (as after seven days)."""
        with self.lock:
            self._delta_epoch += 1

    def expire_tokens(self) -> None:
        """Every access token handed out so far expires now (the client must renew)."""
        with self.lock:
            self._tokens = {t: 0.0 for t in self._tokens}

    def transitive_users(self, group_id: str, seen: set[str] | None = None) -> list[str]:
        seen = seen if seen is not None else set()
        out: list[str] = []
        for member in self.groups.get(group_id, []):
            if member in seen:
                continue
            seen.add(member)
            if member in self.groups:
                out.extend(self.transitive_users(member, seen))
            elif member in self.users:
                out.append(member)
        return out


def _assertion_problem(assertion: str, tenant: Tenant, token_url: str) -> tuple[int, str] | None:
    """Check a certificate credential as Entra does: signed by the uploaded certificate's key (RS256/PS256),
    for this token endpoint (aud), issued by and about the app (iss = sub = client id), not expired."""
    import jwt
    from cryptography import x509

    if not tenant.certificate_pem:
        return 700027, "Client assertion failed signature validation: no certificate is registered for the app."
    key = x509.load_pem_x509_certificate(tenant.certificate_pem.encode()).public_key()
    try:
        claims = jwt.decode(assertion, key, algorithms=["RS256", "PS256"], audience=token_url.split("?")[0])
    except jwt.InvalidSignatureError:
        return 700027, "Client assertion contains an invalid signature."
    except jwt.PyJWTError as exc:
        return 700027, f"Client assertion failed validation: {exc}."
    if claims.get("iss") != tenant.client_id or claims.get("sub") != tenant.client_id:
        return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
    return None


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


_FILTER_TERM = re.compile(
    r"^\s*(?:(?P<prop>\w+)\s+eq\s+(?P<value>'(?:[^']|'')*'|true|false)"
    r"|startswith\((?P<sprop>\w+),\s*'(?P<prefix>(?:[^']|'')*)'\)"
    r"|id\s+in\s+\((?P<ids>[^)]*)\))\s*$", re.I)


def _matcher(expression: str | None):
    """A predicate for the supported $filter subset; GraphError for anything else (as Graph refuses it)."""
    if not expression:
        return lambda user: True
    tests = []
    for term in re.split(r"\s+and\s+", expression, flags=re.I):
        m = _FILTER_TERM.match(term)
        if not m:
            raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified "
                                                              f"for property: '{term.strip()}'.")
        if m["prop"]:
            raw = m["value"]
            value = raw.lower() == "true" if raw.lower() in ("true", "false") else raw[1:-1].replace("''", "'")
            tests.append(lambda u, p=m["prop"], v=value: (str(u.get(p)).lower() == v.lower())
                         if isinstance(v, str) else u.get(p) is v)
        elif m["sprop"]:
            prefix = m["prefix"].replace("''", "'").lower()
            tests.append(lambda u, p=m["sprop"], x=prefix: str(u.get(p) or "").lower().startswith(x))
        else:
            ids = {i.strip().strip("'") for i in m["ids"].split(",") if i.strip()}
            if len(ids) > 15:
                raise GraphError(400, "Request_UnsupportedQuery", "Too many child clauses specified in search filter "
                                                                  "expression containing 'OR' operators: 16. Max allowed: 15.")
            tests.append(lambda u, s=ids: u["id"] in s)
    return lambda user: all(t(user) for t in tests)


def _project(user: dict, select: list[str] | None) -> dict:
    if not select:
        return dict(user)
    return {"id": user["id"], **{p: user.get(p) for p in select if p != "id"}}


class _Handler(BaseHTTPRequestHandler):
    server: GraphServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # --- plumbing -------------------------------------------------------------------------------------------

    def _send(self, status: int, body: dict | str, headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _graph_error(self, err: GraphError) -> None:
        self._send(err.status, {"error": {"code": err.code, "message": err.message, "innerError": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}}}, err.headers)

    @property
    def tenant(self) -> Tenant:
        return self.server.tenant

    def do_GET(self) -> None:  # noqa: N802
        self.tenant.requests.append(("GET", self.path))
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            return self._discovery(path.split("/")[1])
        try:
            self._authorise()
            if self.tenant.throttle:
                status, wait = self.tenant.throttle.pop(0)
                raise GraphError(status, "TooManyRequests" if status == 429 else "ServiceUnavailable",
                                 "Too many requests." if status == 429 else "Service unavailable.",
                                 {"Retry-After": str(wait)})
            if self.tenant.garbage:
                self.tenant.garbage -= 1
                return self._send(200, "<html><body>Gateway says hello</body></html>")
            self._send(200, self._route(path, query))
        except GraphError as err:
            self._graph_error(err)

    def do_POST(self) -> None:  # noqa: N802
        self.tenant.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()} if b"{" not in raw[:1] else {}
        path = urlsplit(self.path).path
        if re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", path):
            return self._token(path.split("/")[1], form)
        m = re.fullmatch(r"/v1\.0/users/([^/]+)/checkMemberGroups", path)
        if m:  # the groups of the list the user is a member of, transitively (JSON body {"groupIds": [...]})
            try:
                self._authorise()
                body = json.loads(raw or b"{}")
                groups = body.get("groupIds")
                if not isinstance(groups, list) or len(groups) > 20:
                    raise GraphError(400, "Request_BadRequest", "groupIds: a list of at most 20 group ids.")
                user = self._one_user(unquote(m[1]))
                member = [g for g in groups if user["id"] in self.tenant.transitive_users(g)]
                return self._send(200, {"@odata.context": f"{self.server.base_url}/v1.0/$metadata#Collection(Edm.String)",
                                        "value": member})
            except GraphError as err:
                return self._graph_error(err)
        self._graph_error(GraphError(405, "Request_BadRequest", "Method not allowed."))

    def do_PATCH(self) -> None:  # noqa: N802
        self.tenant.requests.append(("PATCH", self.path))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/v1\.0/users/([^/]+)", urlsplit(self.path).path)
        try:
            self._authorise()
            if not m:
                raise GraphError(405, "Request_BadRequest", "Method not allowed.")
            wait = self.tenant.patch_throttle.pop(0) if self.tenant.patch_throttle else None
            if wait is not None:
                raise GraphError(429, "TooManyRequests", "Too many requests.", {"Retry-After": str(wait)})
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                raise GraphError(415, "Request_BadRequest", "A supported MIME type could not be found that matches "
                                                            "the content type of the response.")
            changes = json.loads(raw or b"{}")
            self.tenant.patches.append((self.path, changes))
            if not self.tenant.may_update_users:
                raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
            self._update(self._one_user(unquote(m[1])), changes)
            self._send_empty(204)
        except GraphError as err:
            self._graph_error(err)

    def _update(self, user: dict, changes: dict) -> None:
        unknown = [p for p in changes if p not in UPDATABLE]
        if unknown:
            raise GraphError(400, "Request_BadRequest", f"Property '{unknown[0]}' does not exist on type "
                                                        "'microsoft.graph.user' or cannot be updated.")
        phones = changes.get("businessPhones")
        if phones is not None and (not isinstance(phones, list) or len(phones) > 1):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'businessPhones' of "
                                                        "resource 'User'. Only one number can be set.")
        if user.get("onPremisesSyncEnabled") and set(changes) & ON_PREMISES_MASTERED:
            raise GraphError(400, "Request_BadRequest", "Unable to update the specified properties for on-premises "
                                                        "mastered Directory Sync objects or objects currently "
                                                        "undergoing migration.")
        if "onPremisesExtensionAttributes" in changes:
            merged = {**(user.get("onPremisesExtensionAttributes") or {}), **changes["onPremisesExtensionAttributes"]}
            changes = {**changes, "onPremisesExtensionAttributes": merged}
        self.tenant.update(user["id"], **changes)

    def _send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- identity platform ----------------------------------------------------------------------------------

    def _discovery(self, tenant: str) -> None:
        if tenant != self.tenant.tenant_id:
            return self._send(400, {"error": "invalid_tenant", "error_codes": [90002],
                                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found."})
        base = self.server.base_url
        self._send(200, {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "issuer": f"{base}/{tenant}/v2.0",
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "token"],
        })

    def _token(self, tenant: str, form: dict) -> None:
        def refuse(status: int, error: str, code: int, text: str) -> None:
            self._send(status, {"error": error, "error_codes": [code],
                                "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()}"})

        t = self.tenant
        if tenant != t.tenant_id:
            return refuse(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form.get("client_id") != t.client_id:
            return refuse(400, "unauthorized_client", 700016,
                          f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
        if form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            problem = _assertion_problem(form.get("client_assertion", ""), t, f"{self.server.base_url}{self.path}")
            if problem:
                return refuse(401, "invalid_client", *problem)
        elif form.get("client_secret") != t.client_secret:
            return refuse(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                                                          "sent in the request is the client secret value.")
        if form.get("scope") != SCOPE:
            return refuse(400, "invalid_scope", 70011, f"The provided value for the input parameter 'scope' is "
                                                       f"not valid. The scope {form.get('scope')} is not valid.")
        token = secrets.token_urlsafe(32)
        with t.lock:
            t._tokens[token] = time.time() + t.token_lifetime
            t.tokens_issued += 1
        self._send(200, {"token_type": "Bearer", "expires_in": t.token_lifetime, "ext_expires_in": t.token_lifetime,
                         "access_token": token})

    def _authorise(self) -> None:
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tenant._tokens.get(token)
        if not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if expiry is None or expiry < time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")

    # --- Graph --------------------------------------------------------------------------------------------

    def _route(self, path: str, query: dict) -> dict:
        if path == "/v1.0/users":
            return self._list("users", query, lambda: list(self.tenant.users))
        m = re.fullmatch(r"/v1\.0/groups/([^/]+)/transitiveMembers/microsoft\.graph\.user", path)
        if m:
            group = m[1]
            if group not in self.tenant.groups and "$skiptoken" not in query:
                raise GraphError(404, "Request_ResourceNotFound",
                                 f"Resource '{group}' does not exist or one of its queried reference-property "
                                 "objects are not present.")
            return self._list(path.removeprefix("/v1.0/"), query, lambda: self.tenant.transitive_users(group))
        if path == "/v1.0/users/delta":
            return self._delta(query)
        m = re.fullmatch(r"/v1\.0/users/([^/]+)", path)
        if m:  # one user by id or userPrincipalName
            user = self._one_user(unquote(m[1]))
            select = [s.strip() for s in query["$select"].split(",")] if query.get("$select") else None
            return {"@odata.context": f"{self.server.base_url}/v1.0/$metadata#users/$entity", **_project(user, select)}
        m = re.fullmatch(r"/v1\.0/groups/([^/]+)", path)
        if m:
            if m[1] not in self.tenant.groups:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{m[1]}' does not exist or one of its "
                                                                   "queried reference-property objects are not present.")
            return {"id": m[1], "displayName": f"Group {m[1][:8]}"}
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")

    def _one_user(self, key: str) -> dict:
        """A user by object id or userPrincipalName (case-insensitive), as ``/users/{id | userPrincipalName}``."""
        with self.tenant.lock:
            user = self.tenant.users.get(key) or next(
                (u for u in self.tenant.users.values() if (u.get("userPrincipalName") or "").lower() == key.lower()), None)
        if user is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its queried "
                                                              "reference-property objects are not present.")
        return dict(user)

    def _page_size(self, query: dict) -> int:
        top = query.get("$top")
        if top is None:
            return DEFAULT_PAGE
        if not top.isdigit() or not 1 <= int(top) <= MAX_PAGE:
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive.")
        return int(top)

    def _remember(self, state: dict) -> str:
        token = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()
        self.server.tenant._pages[token] = state
        return token

    def _list(self, resource: str, query: dict, ids) -> dict:
        """A paged list: the first request fixes the result (ids, $select); $skiptoken pages continue it."""
        t = self.tenant
        if "$skiptoken" in query:
            state = self._continue(query["$skiptoken"])
        else:
            match = _matcher(query.get("$filter"))
            select = [s.strip() for s in query["$select"].split(",")] if query.get("$select") else None
            with t.lock:
                result = [i for i in ids() if i in t.users and match(t.users[i])]
                if "id in" in (query.get("$filter") or ""):
                    result = [i for i in result if not self._lagging(i)]
            state = {"ids": result, "offset": 0, "select": select, "size": self._page_size(query), "seq": t._seq}
        return self._page(resource, state)

    def _lagging(self, user_id: str) -> bool:
        """Whether this read misses the id, as a replica the change has not reached yet."""
        left = self.tenant.lagging.get(user_id, 0)
        if left:
            self.tenant.lagging[user_id] = left - 1
        return left > 0

    def _continue(self, skiptoken: str) -> dict:
        """The state of a paged read, with every user changed since an earlier page listed it appended again: a
        later page lists it with its new state."""
        t = self.tenant
        state = t._pages.get(skiptoken)
        if state is None:
            raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired and "
                                                                "can no longer be included in your request.")
        with t.lock:
            served = set(state["ids"][:state["offset"]])
            again = [user_id for seq, user_id, changed in t._changes
                     if seq > state["seq"] and changed is not None and user_id in served]
            return {**state, "ids": state["ids"] + list(dict.fromkeys(again)), "seq": t._seq}

    def _page(self, resource: str, state: dict, base: str | None = None, delta_token: bool = False) -> dict:
        """One page of a paged read (users projected as they are now); the next link, or the delta link."""
        t = self.tenant
        page = state["ids"][state["offset"]:state["offset"] + state["size"]]
        users = [_project(t.users[i], state["select"]) for i in page if i in t.users]
        body = {"@odata.context": f"{self.server.base_url}/v1.0/$metadata#{resource}", "value": users}
        rest = {**state, "offset": state["offset"] + state["size"]}
        base = base or f"{t.link_host or self.server.base_url}/v1.0/{resource}"
        if rest["offset"] < len(state["ids"]):
            body["@odata.nextLink"] = f"{base}?$skiptoken={quote(self._remember(rest))}"
        elif delta_token:
            token = base64.urlsafe_b64encode(json.dumps([state["seq"], state["select"], t._delta_epoch]).encode()).decode()
            body["@odata.deltaLink"] = f"{base}?$deltatoken={quote(token)}"
        if t.after_page:
            t.after_page(state["offset"] // state["size"] + 1)
        return body

    def _changes_since(self, since: int) -> list[tuple[str, dict | None]]:
        """(user id, changed properties or None for removed) since ``since``: one per change, or merged per user."""
        t = self.tenant
        changes = [(user_id, changed) for seq, user_id, changed in t._changes if seq > since]
        if t.list_each_change:
            return changes
        latest: dict[str, dict | None] = {}
        for user_id, changed in changes:
            if changed is None:
                latest[user_id] = None
            elif latest.get(user_id, {}) is not None:
                latest.setdefault(user_id, {}).update(changed)
            else:
                latest[user_id] = dict(changed)  # deleted, then re-added under the same id
        return list(latest.items())

    def _change_item(self, user_id: str, changed: dict | None, select: list[str] | None) -> dict:
        t = self.tenant
        if changed is None or user_id not in t.users:
            return {"id": user_id, "@removed": {"reason": "changed"}}
        props = [p for p in changed if p != "id" and (not select or p in select)]  # the id and what changed
        return {"id": user_id, **{p: t.users[user_id].get(p) for p in props}}

    def _delta(self, query: dict) -> dict:
        """``/users/delta``: the first round pages the current users (``ids``); a delta token pages the changes
        since it (``items``). Graph chooses the page size here: ``$top`` is ignored."""
        t = self.tenant
        base = f"{t.link_host or self.server.base_url}/v1.0/users/delta"
        if "$skiptoken" in query:
            state = t._pages.get(query["$skiptoken"])
            if state is None:
                raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired.")
            if "ids" in state:  # the first round
                return self._page("users/delta", self._continue(query["$skiptoken"]), base, delta_token=True)
        elif "$deltatoken" in query:
            try:
                since, select, epoch = json.loads(base64.urlsafe_b64decode(query["$deltatoken"].encode()))
            except ValueError:
                raise GraphError(400, "BadRequest", "Invalid delta token.") from None
            if epoch != t._delta_epoch:
                raise GraphError(410, "syncStateNotFound", "The sync state generation is not found. The delta token "
                                                           "is expired and data must be synchronized again.")
            if t.resync:
                raise GraphError(t.resync.pop(0), "resyncRequired", "A resync is required: the delta token is no "
                                                                    "longer valid; start a full synchronization.")
            with t.lock:
                items = [self._change_item(user_id, changed, select) for user_id, changed in self._changes_since(since)]
                state = {"items": items, "offset": 0, "size": t.delta_page_size, "select": select, "seq": t._seq}
        else:
            select = [s.strip() for s in query["$select"].split(",")] if query.get("$select") else None
            if query.get("$filter"):
                raise GraphError(400, "Request_UnsupportedQuery", "Unsupported query: $filter on users delta is "
                                                                  "limited to id.")
            with t.lock:
                state = {"ids": list(t.users), "offset": 0, "size": t.delta_page_size, "select": select, "seq": t._seq}
            return self._page("users/delta", state, base, delta_token=True)
        page = state["items"][state["offset"]:state["offset"] + state["size"]]
        body = {"@odata.context": f"{self.server.base_url}/v1.0/$metadata#users", "value": page}
        rest = {**state, "offset": state["offset"] + state["size"]}
        if rest["offset"] < len(state["items"]):
            body["@odata.nextLink"] = f"{base}?$skiptoken={quote(self._remember(rest))}"
        else:
            token = base64.urlsafe_b64encode(json.dumps([state["seq"], state["select"], t._delta_epoch]).encode()).decode()
            body["@odata.deltaLink"] = f"{base}?$deltatoken={quote(token)}"
        return body


class GraphServer(TlsServer):
    """``GraphServer(tenant, cert, key).start()``; ``base_url`` is both the authority host and the Graph URL."""

    def __init__(self, tenant: Tenant, certfile: str, keyfile: str):
        self.tenant = tenant
        super().__init__(_Handler, certfile, keyfile)
