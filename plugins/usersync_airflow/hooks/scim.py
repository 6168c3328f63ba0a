"""SCIM 2.0 hooks: an Airflow Connection → a SCIM client, with the UI's Test button.

``usersync_scim``: host = the SCIM base URL (``https://scim.example.com/scim/v2``), password = a bearer token.
``usersync_webex``: Cisco Webex Control Hub — host = the Webex API (default ``https://webexapis.com``), login = the
integration's client id, password = its client secret, extras ``org_id`` and ``refresh_token``.
Both: extras ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait`` (s).
"""

from __future__ import annotations

from typing import Any

from usersync.sources.scim.spec import WEBEX_CONN_TYPE
from usersync_airflow.hooks.client_hook import ClientHook


class ScimHook(ClientHook):
    conn_name_attr = "scim_conn_id"
    default_conn_name = "usersync_scim_default"
    conn_type = "usersync_scim"
    source_type = "scim"
    hook_name = "usersync SCIM 2.0"

    def __init__(self, scim_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(scim_conn_id, **kwargs)


class WebexHook(ScimHook):
    default_conn_name = "usersync_webex_default"
    conn_type = WEBEX_CONN_TYPE
    hook_name = "usersync Cisco Webex Control Hub (SCIM)"
