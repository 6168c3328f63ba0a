"""Cisco Webex Control Hub as a SCIM provider: the organisation's SCIM base URL and OAuth tokens of a Webex
integration or service app, renewed from the refresh token.

Connection (type ``usersync_webex``): host = the Webex API (default ``https://webexapis.com``), login = the
integration's client id, password = its client secret; extras ``org_id`` (the organisation, as Control Hub shows
it), ``refresh_token`` (from authorising the integration with scope ``identity:people_read``), ``ca_certs_file``,
``timeout``, ``max_retries``, ``max_wait``. Several organisations: one connection and one rules file each.

Webex may hand out a new refresh token when one is used; the new one is given to ``ConnectionFields.keep`` (the
Airflow adapter keeps it in a masked Variable that the next run reads before the connection's own, while the
connection still holds the token it was renewed from), so a rotated token is never lost between runs and a new one
an admin enters always wins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from usersync.core.connection import ConnectionFields
from usersync.sources.errors import SourceAuthError, SourceError
from usersync.sources.http import HttpSettings, JsonHttp, secure_url
from usersync.sources.scim.client import ScimSettings, scim_settings
from usersync.sources.scim.spec import REFRESH_TOKEN, is_webex_connection

log = logging.getLogger(__name__)
WEBEX_API = "https://webexapis.com"


def is_webex(conn: ConnectionFields) -> bool:
    return is_webex_connection(conn.conn_type, conn.extra)


def webex_settings(conn: ConnectionFields) -> ScimSettings:
    """The organisation's SCIM base URL: ``{host}/identity/scim/{org_id}/v2``."""
    org = str(conn.extra.get("org_id") or "").strip()
    if not org:
        raise SourceError(f"connection {conn.conn_id!r}: extra org_id (the Webex organisation id, Control Hub → "
                          "Account) is missing")
    host = (conn.host or WEBEX_API).rstrip("/")
    if not host.lower().startswith(("https://", "http://")):
        host = f"https://{host}"
    return scim_settings(conn, base_url=f"{host}/identity/scim/{org}/v2")


@dataclass
class RefreshingToken:
    """Access tokens from ``{host}/v1/access_token`` (``grant_type=refresh_token``), cached until shortly before
    they expire; a rotated refresh token goes to ``keep``."""

    conn: ConnectionFields
    refresh_token: str = field(repr=False)
    _access: str | None = field(default=None, repr=False)
    _expires: float = 0.0
    renewals: int = 0
    transport: httpx.BaseTransport | None = field(default=None, repr=False)  # the wire (tests: a mock)

    @classmethod
    def from_connection(cls, conn: ConnectionFields) -> RefreshingToken:
        token = str(conn.extra.get(REFRESH_TOKEN) or "").strip()
        if not conn.login or not conn.password or not token:
            raise SourceError(f"connection {conn.conn_id!r} needs the integration's client id (login), client secret "
                              "(password) and a refresh token (extra refresh_token)")
        return cls(conn, token)

    @property
    def url(self) -> str:
        host = (self.conn.host or WEBEX_API).rstrip("/")
        url = f"{host if host.lower().startswith(('https://', 'http://')) else 'https://' + host}/v1/access_token"
        return secure_url(url, self.conn.conn_id, self.conn.extra, "the Webex token URL")

    def token(self, renew: bool = False) -> str:
        if self._access and not renew and time.time() < self._expires:
            return self._access
        form = {"grant_type": "refresh_token", "client_id": self.conn.login or "",
                "client_secret": self.conn.password or "", "refresh_token": self.refresh_token}
        http = JsonHttp("Webex", HttpSettings.from_extra(self.conn.extra), transport=self.transport)
        try:
            answer = http.send("POST", self.url, data=form)
        finally:
            http.close()
        body = _json(answer)
        if answer.status_code >= 400 or "access_token" not in body:
            error = body.get("error") or answer.status_code
            said = body.get("error_description") or body.get("message") or answer.reason_phrase
            raise SourceAuthError(
                f"Webex refused to renew the access token of connection {self.conn.conn_id!r} ({error}: {said}): the "
                "refresh token is expired (unused for 90 days), revoked, or not this integration's; authorise the "
                "integration again and put the new refresh token in the connection's extra refresh_token")
        self.renewals += 1
        self._access = str(body["access_token"])
        self._expires = time.time() + max(float(body.get("expires_in", 3600)) - 60, 0)
        rotated = str(body.get("refresh_token") or "")
        if rotated and rotated != self.refresh_token:
            self.refresh_token = rotated
            if self.conn.keep is not None:
                self.conn.keep(REFRESH_TOKEN, rotated)
            log.info("Webex handed out a new refresh token for connection %s: kept for the next run", self.conn.conn_id)
        return self._access


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
