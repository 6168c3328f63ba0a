"""scim2-server (the python-scim project's SCIM 2.0 server, written from the RFCs by others) on a loopback port,
with a fresh in-memory store per test — as pytest-scim2-server runs it, but one server per test so runs never see
another test's users. Changes are made through the server's own SCIM API (POST, PATCH, DELETE), as an admin's
provisioning tool would."""

from __future__ import annotations

import json
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
from scim2_server.applications.wsgi import WSGIApplication
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.utils import load_default_provider

from devtools.netutil import free_port

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HEADERS = {"Content-Type": "application/scim+json"}


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


def scim_user(i: int, **overrides: Any) -> dict[str, Any]:
    """A plausible SCIM user: work and home e-mail (every third with ``primary`` on the work one), a work phone,
    the enterprise department; non-ASCII names among them."""
    given = ["Zoë", "Łukasz", "Chiara", "José", "Anna"][i % 5]
    user: dict[str, Any] = {
        "schemas": [CORE, ENTERPRISE],
        "userName": f"user{i:05d}",
        "name": {"givenName": given, "familyName": ["Müller", "Rossi", "Ødegård"][i % 3]},
        "active": True,
        "emails": [{"value": f"user{i:05d}@home.example", "type": "home"},
                   {"value": f"User{i:05d}@Work.Example", "type": "work", **({"primary": True} if i % 3 == 0 else {})}],
        "phoneNumbers": [{"value": f"+39 0461 {20000 + i}", "type": "work"}],
        ENTERPRISE: {"department": ["Sales", "Support", "Engineering"][i % 3]},
    }
    user.update(overrides)
    return user


class ScimServer:
    """``start()`` → serving on 127.0.0.1:``port``; ``url`` is the SCIM base URL.

    ``faults`` makes it a provider that gets things wrong, for the tests of bad input (set between runs):
    ``ignore_count`` (the ``count`` parameter dropped: the provider's own page size), ``ignore_start`` (every page
    is the first), ``total_offset`` (added to ``totalResults``), ``html`` (the next list requests answer 502 with
    an HTML page), ``throttle`` (the next list requests answer 429 with Retry-After 1).
    """

    def __init__(self) -> None:
        service = ScimService(load_default_provider())
        self.scim = WSGIApplication(InMemoryStorage(), service.provider, service)
        self.port = free_port()
        self._server: WSGIServer | None = None
        self.faults: dict[str, Any] = {}
        self.list_requests = 0

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """scim2-server, distorted as ``faults`` say (only ``GET /Users`` lists are touched)."""
        listing = environ["REQUEST_METHOD"] == "GET" and environ.get("PATH_INFO") == "/Users"
        if not listing or not self.faults:
            self.list_requests += listing
            return self.scim(environ, start_response)
        self.list_requests += 1
        for fault, status, body, kind in (("html", "502 Bad Gateway", b"<html>upstream error</html>", "text/html"),
                                          ("throttle", "429 Too Many Requests", b'{"status": "429", "detail": "slow down"}',
                                           "application/scim+json")):
            if self.faults.get(fault, 0) > 0:
                self.faults[fault] -= 1
                start_response(status, [("Content-Type", kind), ("Retry-After", "1")])
                return [body]
        query = [p for p in environ.get("QUERY_STRING", "").split("&")
                 if not (self.faults.get("ignore_count") and p.startswith("count="))
                 and not (self.faults.get("ignore_start") and p.startswith("startIndex="))]
        environ = {**environ, "QUERY_STRING": "&".join(query)}
        captured: dict[str, Any] = {}

        def keep(status: str, headers: list, exc_info: Any = None) -> None:
            captured.update(status=status, headers=headers)

        body = b"".join(self.scim(environ, keep))
        if self.faults.get("total_offset") and captured["status"].startswith("200"):
            page = json.loads(body)
            page["totalResults"] += self.faults["total_offset"]
            body = json.dumps(page).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScimServer:
        self._server = make_server("127.0.0.1", self.port, self.app, handler_class=_Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.api = httpx.Client(base_url=self.url, headers=HEADERS, timeout=30)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.api.close()

    def add(self, user: dict[str, Any]) -> str:
        answer = self.api.post("/Users", json=user)
        answer.raise_for_status()
        return answer.json()["id"]

    def patch(self, user_id: str, path: str, value: Any) -> None:
        answer = self.api.patch(f"/Users/{user_id}", json={"schemas": [PATCH_OP],
                                                            "Operations": [{"op": "replace", "path": path, "value": value}]})
        answer.raise_for_status()

    def delete(self, user_id: str) -> None:
        self.api.delete(f"/Users/{user_id}").raise_for_status()
