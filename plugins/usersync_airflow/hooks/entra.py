"""Microsoft Entra ID hook: an Airflow Connection (type ``usersync_entra``) → ``GraphSettings`` / a client.

Connection fields: host = the tenant id (GUID or ``contoso.onmicrosoft.com``), login = the app's client id,
password = its client secret. A certificate instead of a secret: extras ``certificate_key_file`` (PEM private
key) and ``certificate_thumbprint``. Other extras: ``authority_host`` (default login.microsoftonline.com; national
clouds), ``graph_url`` (default graph.microsoft.com), ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429
/ 503), ``max_wait`` (s, the longest Retry-After honoured). The app needs the application permission
User.Read.All (and GroupMember.Read.All for ``group_id``), granted by an admin.
"""

from __future__ import annotations

from typing import Any

from usersync.sources.entra.graph_client import GraphSettings, graph_settings
from usersync_airflow.hooks.client_hook import ClientHook
from usersync_airflow.hooks.connections import connection_fields


class EntraHook(ClientHook):
    conn_name_attr = "entra_conn_id"
    default_conn_name = "usersync_entra_default"
    conn_type = "usersync_entra"
    source_type = "entra_id"
    hook_name = "usersync Microsoft Entra ID (Graph)"

    def __init__(self, entra_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(entra_conn_id, **kwargs)

    def get_settings(self) -> GraphSettings:
        return graph_settings(connection_fields(self.conn_id))
