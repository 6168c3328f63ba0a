"""A protocol-faithful Cisco UCM AXL test server (listUser only), real HTTPS on loopback.

No Cisco files are used; it behaves as CUCM's AXL service does: POST /axl/ only; HTTP 401 without or with
wrong Basic auth; the SOAPAction version must agree with the body namespace; searchCriteria must not be empty;
only the requested returnedTags come back (empty elements for empty values, primaryExtension nested); every
user carries its uuid attribute; skip/first windows in a stable order; an empty <return/> past the end; the
"Query request too large" fault above a row cap; injectable 503s and slow answers. ``after_page`` runs an action
once right after the page at a given ``skip`` has been answered (users deleted or added while a read pages).

Not reproduced: any operation but listUser (getUser, the SQL interface), AXL's throttle on concurrent
requests, and the order CUCM really lists in (here: by uuid, stable between requests).
"""

from __future__ import annotations

import base64
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from tests.support.tls_server import TlsServer

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
FIELDS = ("userid", "firstName", "middleName", "lastName", "mailid", "department", "title", "manager",
          "telephoneNumber", "mobileNumber", "homeNumber", "pagerNumber", "directoryUri", "status")


def cucm_user(i: int, **overrides) -> dict:
    user = {
        "uuid": f"{{{0xC0C0 + i:08X}-0000-4000-8000-{i:012X}}}",
        "userid": f"cucm{i:04d}", "firstName": f"First{i}", "middleName": "", "lastName": f"Last{i}",
        "mailid": f"cucm{i}@example.test", "department": ["Sales", "Support"][i % 2], "title": "",
        "manager": "", "telephoneNumber": f"+39 0461 {3000 + i}", "mobileNumber": "" if i % 3 else f"+39 347 {i:07d}",
        "homeNumber": "", "pagerNumber": "", "directoryUri": f"cucm{i}@example.test", "status": "1",
        "pattern": str(3000 + i), "routePartitionName": "Internal_PT",
    }
    user.update(overrides)
    return user


@dataclass
class AxlState:
    users: list[dict]
    login: str = "axlreader"
    password: str = "Axl-Secret-1"
    version: str = "14.0"
    row_cap: int = 250  # larger pages get the "too large" fault, as CUCM's 8 MB limit does
    fail_503: int = 0  # answer this many requests with 503 first
    delay: float = 0.0
    garbage: bool = False  # answer 200 with a body that is not XML
    requests: list[dict] = field(default_factory=list)
    after_page: dict[int, Callable[[], None]] = field(default_factory=dict)
    ignore_skip: bool = False  # a broken server: every page is the first


def _fault(message: str, code: str = "soapenv:Server") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
        f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring><detail>"
        f"<axlError><axlcode>-1</axlcode><axlmessage>{escape(message)}</axlmessage><request>listUser</request>"
        "</axlError></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _like(pattern: str) -> re.Pattern:
    return re.compile("^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$", re.I)


class _Handler(BaseHTTPRequestHandler):
    state: AxlState

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(405)

    def do_POST(self):
        st = self.state
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        st.requests.append({"path": self.path, "soapaction": self.headers.get("SOAPAction"), "body": body})
        if self.path.rstrip("/") != "/axl":
            return self._send(404)
        expected = "Basic " + base64.b64encode(f"{st.login}:{st.password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, b"", {"WWW-Authenticate": 'Basic realm="Cisco AXL"'})
        if st.fail_503 > 0:
            st.fail_503 -= 1
            return self._send(503, b"Service Unavailable")
        if st.delay:
            time.sleep(st.delay)
        if st.garbage:
            return self._send(200, b"<html>proxy error page")
        action = re.fullmatch(r'"?CUCM:DB ver=([\d.]+) (\w+)"?', self.headers.get("SOAPAction") or "")
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            return self._send(500, _fault(f"Unable to parse request: {e}", "soapenv:Client"))
        op = root.find(f"{{{SOAP}}}Body/*")
        ns = re.fullmatch(r"\{http://www.cisco.com/AXL/API/([\d.]+)\}(\w+)", op.tag) if op is not None else None
        if not action or not ns or action.group(1) != ns.group(1) or action.group(2) != ns.group(2):
            return self._send(500, _fault("SOAPAction and request namespace (version/operation) do not match", "soapenv:Client"))
        if ns.group(1) != st.version:
            return self._send(599, b"Unsupported AXL version")
        if ns.group(2) != "listUser":
            return self._send(500, _fault(f"Operation {ns.group(2)} not supported by this test server"))
        criteria = op.find("searchCriteria")
        if criteria is None or not list(criteria) or not any((c.text or "").strip() for c in criteria):
            return self._send(500, _fault("At least one search criteria is required", "soapenv:Client"))
        pattern = _like((criteria.findtext("userid") or "%").strip())
        tags = [t.tag for t in (op.find("returnedTags") or [])]
        skip = int(op.findtext("skip") or 0)
        first = op.findtext("first")
        matched = sorted((u for u in st.users if pattern.match(u["userid"])), key=lambda u: u["uuid"])
        skip = 0 if st.ignore_skip else skip
        page = matched if first is None else matched[skip: skip + int(first)]  # skip only honoured with first
        if len(page) > st.row_cap:
            return self._send(500, _fault(
                f"Query request too large. Total rows matched: {len(matched)} rows. "
                f"Suggestive Row Fetch: less than {st.row_cap} rows"))
        out = []
        for u in page:
            parts = []
            for t in tags:
                if t == "primaryExtension":
                    parts.append(f"<primaryExtension><pattern>{escape(u['pattern'])}</pattern>"
                                 f"<routePartitionName>{escape(u['routePartitionName'])}</routePartitionName></primaryExtension>")
                elif u.get(t):
                    parts.append(f"<{t}>{escape(u[t])}</{t}>")
                else:
                    parts.append(f"<{t}/>")
            out.append(f'<user uuid="{u["uuid"]}">{"".join(parts)}</user>')
        ret = f"<return>{''.join(out)}</return>" if out else "<return/>"
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
            f'<ns:listUserResponse xmlns:ns="http://www.cisco.com/AXL/API/{st.version}">{ret}</ns:listUserResponse>'
            "</soapenv:Body></soapenv:Envelope>"
        )
        if first is not None and skip in st.after_page:  # the page is made: the change comes before the next one
            st.after_page.pop(skip)()
        return self._send(200, xml.encode())


class AxlTestServer(TlsServer):
    """``AxlTestServer(state, cert, key).start()``: AXL's SOAP endpoint over the users in ``state``."""

    def __init__(self, state: AxlState, certfile: str, keyfile: str):
        self.state = state
        super().__init__(type("Handler", (_Handler,), {"state": state}), certfile, keyfile)
