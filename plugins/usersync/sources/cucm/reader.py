"""Cisco UCM (the PBX) source: end users read over AXL ``listUser``, paged, with back-off.

One operation needs no WSDL (Cisco's WSDL is version-specific and belongs to the customer's CUCM), so the SOAP
envelope is written here and the answer parsed with the standard library. CUCM limits the rate and the size of
queries: HTTP 503 means "busy, retry later"; a "Query request too large" fault suggests a smaller page. Both are
handled with bounded retries; any other fault fails the run with its text.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import httpx

from usersync.core.connection import ConnectionFields
from usersync.core.progress import Progress
from usersync.sources.base import OneAccount, ScopeCheck, Source
from usersync.sources.cucm.spec import CucmSourceSpec
from usersync.sources.errors import (
    SourceAuthError,
    SourceError,
    SourceQueryError,
    SourceTlsError,
    SourceUnreachable,
)
from usersync.sources.http import MAX_RESPONSE_MB, max_response_bytes, read_capped
from usersync.sources.read_state import SourceInfo
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TOO_LARGE = re.compile(r"Query request too large.*?less than (\d+) rows", re.S)
NESTED = {"primaryExtension": "pattern", "primaryExtensionPartition": "routePartitionName"}


@dataclass(frozen=True)
class AxlSettings:
    host: str
    login: str
    password: str = field(repr=False)
    port: int = 8443
    version: str = "14.0"
    ca_certs_file: str | None = None  # None: the system's trusted CAs
    timeout: float = 60.0
    max_retries: int = 5  # per page, for 503 and timeouts
    backoff_seconds: float = 2.0  # doubled on every retry, capped at 60 s
    max_response_bytes: int = int(MAX_RESPONSE_MB * 2**20)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/axl/"

    @classmethod
    def from_connection(cls, conn: ConnectionFields) -> AxlSettings:
        """Connection fields: host (the publisher), port (8443), login (an application user with "Standard AXL
        Read Only API Access"), password. Extras: ``axl_version`` (e.g. 12.5, 14.0, 15.0; default 14.0),
        ``ca_certs_file``, ``timeout`` (s), ``max_retries``, ``backoff_seconds``."""
        extra = conn.extra
        if not conn.host or not conn.login:
            raise SourceError(f"connection {conn.conn_id!r} needs a host and a login")
        version = str(extra.get("axl_version", "14.0"))
        if not version.replace(".", "").isdigit():
            raise SourceError(f"connection {conn.conn_id!r}: axl_version {version!r} is not like 14.0")
        return cls(
            host=conn.host, login=conn.login, password=conn.password or "", port=int(conn.port or 8443),
            version=version, ca_certs_file=extra.get("ca_certs_file") or None,
            timeout=float(extra.get("timeout", 60)), max_retries=int(extra.get("max_retries", 5)),
            backoff_seconds=float(extra.get("backoff_seconds", 2.0)), max_response_bytes=max_response_bytes(extra),
        )


class AxlClient:
    """listUser over one keep-alive HTTPS session."""

    def __init__(self, settings: AxlSettings, sleep: Callable[[float], None] = time.sleep):
        self.settings, self.sleep = settings, sleep
        context = ssl.create_default_context(cafile=settings.ca_certs_file)
        self.http = httpx.Client(
            verify=context,
            auth=(settings.login, settings.password),
            timeout=settings.timeout,
            headers={"Content-Type": "text/xml; charset=utf-8",
                     "SOAPAction": f'"CUCM:DB ver={settings.version} listUser"'},
        )

    def close(self) -> None:
        self.http.close()

    def _envelope(self, pattern: str, tags: list[str], skip: int, first: int) -> str:
        returned = "".join(
            "<primaryExtension><pattern/><routePartitionName/></primaryExtension>" if t == "primaryExtension"
            else f"<{t}/>"
            for t in dict.fromkeys("primaryExtension" if t in NESTED else t for t in tags if t != "uuid")
        )
        return (
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
            f'xmlns:ns="http://www.cisco.com/AXL/API/{self.settings.version}">'
            "<soapenv:Header/><soapenv:Body>"
            f'<ns:listUser sequence="1"><searchCriteria><userid>{escape(pattern)}</userid></searchCriteria>'
            f"<returnedTags>{returned}</returnedTags><skip>{skip}</skip><first>{first}</first></ns:listUser>"
            "</soapenv:Body></soapenv:Envelope>"
        )

    def _post(self, body: str) -> httpx.Response:
        try:
            with self.http.stream("POST", self.settings.url, content=body.encode("utf-8")) as answer:
                return read_capped(answer, self.settings.max_response_bytes, self.settings.url)
        except httpx.ConnectError as e:
            text = str(e)
            if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
                raise SourceTlsError(f"TLS handshake with {self.settings.url} failed (untrusted certificate?): {text}") from None
            raise SourceUnreachable(f"cannot connect to {self.settings.url}: {text}") from None

    def list_users(self, pattern: str, tags: list[str], skip: int, first: int) -> tuple[list[dict[str, str]], int]:
        """One page: (users, the page size that worked — smaller when CUCM asked for it)."""
        attempt = 0
        while True:
            try:
                response = self._post(self._envelope(pattern, tags, skip, first))
            except httpx.TimeoutException:
                response = None
            if response is not None and response.status_code == 401:
                raise SourceAuthError(f"{self.settings.url} refused the credentials of {self.settings.login!r} (HTTP 401)")
            if response is not None and response.status_code == 200:
                return _parse_users(response.content), first
            fault = _fault(response.content) if response is not None and response.status_code == 500 else None
            suggested = TOO_LARGE.search(fault or "")
            if suggested:
                smaller = max(1, min(int(suggested.group(1)) - 1, first // 2))
                if smaller >= first:
                    raise SourceQueryError(f"CUCM refuses even a page of {first} users: {fault}")
                log.warning("CUCM: page of %d users too large; retrying with %d (%s)", first, smaller, fault)
                first = smaller
                continue
            if fault is not None:
                raise SourceQueryError(f"CUCM AXL fault on listUser: {fault}")
            if response is not None and response.status_code != 503:
                raise SourceError(f"unexpected HTTP {response.status_code} from {self.settings.url}: "
                                  f"{response.text[:300]}")
            attempt += 1
            what = "timed out" if response is None else "is busy (HTTP 503)"
            if attempt > self.settings.max_retries:
                raise SourceUnreachable(f"CUCM {what}; gave up after {self.settings.max_retries} retries")
            delay = min(60.0, self.settings.backoff_seconds * 2 ** (attempt - 1))
            log.warning("CUCM %s; retry %d of %d in %.1f s", what, attempt, self.settings.max_retries, delay)
            self.sleep(delay)


def _fault(content: bytes) -> str | None:
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return None
    node = root.find(f".//{{{SOAP_NS}}}Fault/faultstring")
    return node.text.strip() if node is not None and node.text else None


def _parse_users(content: bytes) -> list[dict[str, str]]:
    try:
        root = ET.fromstring(content)
    except ET.ParseError as e:
        raise SourceQueryError(f"CUCM sent a malformed AXL answer: {e}") from None
    users = []
    for user in root.iter("user"):
        attrs = {"uuid": user.get("uuid", "")}
        for child in user:
            if child.tag == "primaryExtension":
                attrs["primaryExtension"] = (child.findtext("pattern") or "").strip()
                attrs["primaryExtensionPartition"] = (child.findtext("routePartitionName") or "").strip()
            else:
                attrs[child.tag] = (child.text or "").strip()
        users.append(attrs)
    return users


class CucmSource(Source):

    spec: CucmSourceSpec
    unique_by = "uuid"  # a user listed twice while the read pages (pages overlap): its last state is kept
    empty_hint = "no end users match the AXL search criteria? an AXL user without read access to end users?"
    def __init__(self, spec: CucmSourceSpec, settings: AxlSettings, attributes: list[str],
                 sleep: Callable[[float], None] = time.sleep):
        self.spec, self.settings, self.attributes = spec, settings, attributes
        self.client = AxlClient(settings, sleep)

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> CucmSource:
        assert isinstance(spec, CucmSourceSpec) and connection is not None
        return cls(spec, AxlSettings.from_connection(connection), attributes)

    def check(self) -> SourceInfo:
        self.client.list_users(self.spec.userid_pattern, ["userid"], 0, 1)
        return SourceInfo(url=f"{self.settings.url} (AXL {self.settings.version})", warnings=[])

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        """Pages of ``first`` users from ``skip`` 0 until a short page. A user served twice (pages overlap when
        users are added while the read pages) is yielded each time: ``unique_by`` keeps its last state."""
        tags = self._tags()
        progress = Progress("extract CUCM users", log)
        skip, first, previous = 0, self.spec.page_size, None
        while True:
            page, first = self.client.list_users(self.spec.userid_pattern, tags, skip, first)
            uuids = [user["uuid"] for user in page]
            if uuids and uuids == previous:  # skip ignored: the same page would come back for ever
                raise SourceQueryError(f"CUCM answered listUser skip {skip} with the page before it again: it ignores "
                                       "skip, so the read cannot end; nothing is deleted")
            previous = uuids
            for user in page:
                if self.spec.disabled_accounts == "exclude" and user.get("status") == "2":
                    continue
                yield _record(user)
            progress.advance(len(page))
            if len(page) < first:
                break
            skip += len(page)
        progress.done()

    def _tags(self) -> list[str]:
        return list(dict.fromkeys(["userid", "status", *self.attributes]))

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """The end user whose userid is ``account``: listUser with that userid as its search criterion (CUCM
        finds it; ``_`` is a one-character wildcard there, so every page of matches is read until the exact
        userid is among them), then the rules' userid pattern and the inactive status tested on it."""
        wanted = account.strip().casefold()
        found = OneAccount(account, found_by=f"listUser userid = {account!r}")
        skip, first, user = 0, self.spec.page_size, None
        while user is None:
            page, first = self.client.list_users(account.replace("%", ""), self._tags(), skip, first)
            found.requests += 1
            found.entries += len(page)
            user = next((u for u in page if u.get("userid", "").casefold() == wanted), None)
            if len(page) < first:
                break
            skip += len(page)
        if user is None:
            return found
        found.record = _record(user)
        inside = bool(like(self.spec.userid_pattern).fullmatch(user.get("userid", "")))
        found.checks.append(ScopeCheck("userid pattern", inside, f"{user.get('userid')!r} "
                                       f"{'matches' if inside else 'does not match'} {self.spec.userid_pattern!r}"))
        if self.spec.disabled_accounts != "import":
            inactive = user.get("status") == "2"
            found.checks.append(ScopeCheck(
                "disabled accounts", not inactive or self.spec.disabled_accounts == "skip",
                f"inactive in CUCM (status 2): {'left out' if self.spec.disabled_accounts == 'exclude' else 'its user is left as it is'} "
                f"(disabled_accounts: {self.spec.disabled_accounts})" if inactive else f"active (status {user.get('status')})"))
        return found

    def close(self) -> None:
        self.client.close()


def _record(user: dict[str, str]) -> SourceRecord:
    return SourceRecord(f"CUCM user {user.get('userid')} {user['uuid']}", user)


def like(pattern: str) -> re.Pattern:
    """An AXL search criterion (SQL LIKE: ``%`` any text, ``_`` one character) as a case-insensitive regex."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.I)
