"""SCIM 2.0 hooks: an Airflow Connection → a SCIM client, with the UI's Test button.

``usersync_scim``: host = the SCIM base URL (``https://scim.example.com/scim/v2``), password = a bearer token.
``usersync_webex``: Cisco Webex Control Hub — host = the Webex API (default ``https://webexapis.com``), login = the
integration's client id, password = its client secret, extras ``org_id`` and ``refresh_token``.
Both: extras ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait`` (s).
"""

from __future__ import annotations

from typing import Any

from usersync.sources.errors import SourceError
from usersync.sources.scim import webex
from usersync.sources.scim.client import ScimClient, ScimSettings, StaticToken, Tokens, scim_settings
from usersync_airflow.hooks.client_hook import ClientHook
from usersync_airflow.sources import connection_fields


class ScimHook(ClientHook):
    conn_name_attr = "scim_conn_id"
    default_conn_name = "usersync_scim_default"
    conn_type = "usersync_scim"
    hook_name = "usersync SCIM 2.0"

    def __init__(self, scim_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(scim_conn_id, **kwargs)

    def get_settings(self) -> tuple[ScimSettings, Tokens]:
        conn = connection_fields(self.conn_id)
        if webex.is_webex(conn):
            return webex.webex_settings(conn), webex.RefreshingToken.from_connection(conn)
        if not conn.password:
            raise SourceError(f"connection {self.conn_id!r} has no bearer token (password)")
        return scim_settings(conn), StaticToken(conn.password)

    def make_client(self, settings: tuple[ScimSettings, Tokens]) -> ScimClient:
        return ScimClient(*settings)

    def probe(self, client: ScimClient) -> str:
        answer = client.get("Users", {"count": "1", "attributes": "id"})
        return f"the SCIM provider at {client.settings.base_url} answered: {answer.get('totalResults', '?')} user(s)"


class WebexHook(ScimHook):
    default_conn_name = "usersync_webex_default"
    conn_type = webex.CONN_TYPE
    hook_name = "usersync Cisco Webex Control Hub (SCIM)"
