"""scim2-server (the python-scim project's SCIM 2.0 server, written from the RFCs by others) on a loopback port,
with a fresh in-memory store per test — as pytest-scim2-server runs it, but one server per test so runs never see
another test's users. Changes are made through the server's own SCIM API (POST, PATCH, DELETE), as an admin's
provisioning tool would."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx

from devtools.netutil import free_port

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HEADERS = {"Content-Type": "application/scim+json"}
SHOUTED = {"primary": "Primary", "type": "TYPE", "value": "Value", "display": "Display"}


class _Threaded(ThreadingMixIn, WSGIServer):
    """One thread per request, so an ``after_page`` action can change users through the server's own API."""

    daemon_threads = True


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

    Two more make it a provider that is right but unlike scim2-server's defaults: ``by_modified`` lists users
    in the order they were last modified (``sortBy=meta.lastModified``, as providers that page a change-ordered
    index do: a user changed during a read moves to the end and is served again on a later page);
    ``shout`` writes the sub-attribute names of multi-valued attributes as ``Primary``, ``TYPE``, ``Value``,
    ``Display`` (names are case-insensitive, RFC 7643 §2.1).

    ``after_page`` runs an action once, right after the list page at a given ``startIndex`` has been answered
    (users deleted or added while a read pages).
    """

    def __init__(self) -> None:
        # scim2-server is imported here, not at the top: test modules import this one for scim_user, and the
        # fast lane collects them without starting a server
        from scim2_server.applications.wsgi import WSGIApplication
        from scim2_server.memory import InMemoryStorage
        from scim2_server.service import ScimService
        from scim2_server.utils import load_default_provider

        service = ScimService(load_default_provider())
        self.scim = WSGIApplication(InMemoryStorage(), service.provider, service)
        self.port = free_port()
        self._server: WSGIServer | None = None
        self.faults: dict[str, Any] = {}
        self.after_page: dict[int, Callable[[], None]] = {}
        self.list_requests = 0
        self.id_requests = 0

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """scim2-server, distorted as ``faults`` say (only ``GET /Users`` lists and reads are touched)."""
        answer = self._answer(environ, start_response)
        start = re.search(r"(?:^|&)startIndex=(\d+)", environ.get("QUERY_STRING", ""))
        if environ.get("PATH_INFO") == "/Users" and start and int(start[1]) in self.after_page:
            answer = [b"".join(answer)]  # answered in full before the action changes the store
            self.after_page.pop(int(start[1]))()
        return answer

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Any:
        reading = environ["REQUEST_METHOD"] == "GET" and (environ.get("PATH_INFO") or "").startswith("/Users/")
        self.id_requests += reading
        listing = environ["REQUEST_METHOD"] == "GET" and environ.get("PATH_INFO") == "/Users"
        if not (listing or reading) or not self.faults:
            self.list_requests += listing
            return self.scim(environ, start_response)
        self.list_requests += listing
        for fault, status, body, kind in (("html", "502 Bad Gateway", b"<html>upstream error</html>", "text/html"),
                                          ("throttle", "429 Too Many Requests", b'{"status": "429", "detail": "slow down"}',
                                           "application/scim+json")):
            if listing and self.faults.get(fault, 0) > 0:
                self.faults[fault] -= 1
                start_response(status, [("Content-Type", kind), ("Retry-After", "1")])
                return [body]
        query = [p for p in environ.get("QUERY_STRING", "").split("&")
                 if not (self.faults.get("ignore_count") and p.startswith("count="))
                 and not (self.faults.get("ignore_start") and p.startswith("startIndex="))]
        if listing and self.faults.get("by_modified"):
            query.append("sortBy=meta.lastModified")
        environ = {**environ, "QUERY_STRING": "&".join(query)}
        captured: dict[str, Any] = {}

        def keep(status: str, headers: list, exc_info: Any = None) -> None:
            captured.update(status=status, headers=headers)

        body = b"".join(self.scim(environ, keep))
        if self.faults.get("total_offset") and captured["status"].startswith("200") and listing:
            page = json.loads(body)
            page["totalResults"] += self.faults["total_offset"]
            body = json.dumps(page).encode()
        if self.faults.get("shout") and captured["status"].startswith("200"):
            answer = json.loads(body)
            for resource in answer.get("Resources", [answer]):
                for name, value in resource.items():
                    if isinstance(value, list):
                        resource[name] = [{SHOUTED.get(k, k): v for k, v in item.items()} if isinstance(item, dict)
                                          else item for item in value]
            body = json.dumps(answer).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScimServer:
        self._server = make_server("127.0.0.1", self.port, self.app, server_class=_Threaded,
                                   handler_class=_Quiet)
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
