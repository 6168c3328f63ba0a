"""Microsoft Entra ID hook: an Airflow Connection (type ``usersync_entra``) → ``GraphSettings`` / a client.

Connection fields: host = the tenant id (GUID or ``contoso.onmicrosoft.com``), login = the app's client id,
password = its client secret. A certificate instead of a secret: extras ``certificate_key_file`` (PEM private
key) and ``certificate_thumbprint``. Other extras: ``authority_host`` (default login.microsoftonline.com; national
clouds), ``graph_url`` (default graph.microsoft.com), ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429
/ 503), ``max_wait`` (s, the longest Retry-After honoured). The app needs the application permission
User.Read.All (and GroupMember.Read.All for ``group_id``), granted by an admin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from usersync.sources.errors import SourceError
from usersync.sources.entra.graph_client import AUTHORITY_HOST, GRAPH, GraphClient, GraphSettings
from usersync_airflow.hooks.client_hook import ClientHook


class EntraHook(ClientHook):
    conn_name_attr = "entra_conn_id"
    default_conn_name = "usersync_entra_default"
    conn_type = "usersync_entra"
    hook_name = "usersync Microsoft Entra ID (Graph)"

    def __init__(self, entra_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(entra_conn_id, **kwargs)

    def get_settings(self) -> GraphSettings:
        conn = self.get_connection(self.entra_conn_id)
        extra = conn.extra_dejson
        if not conn.host or not conn.login:
            raise SourceError(f"connection {self.entra_conn_id!r} needs the tenant id (host) and the client id (login)")
        key = None
        if extra.get("certificate_key_file"):
            try:
                key = Path(extra["certificate_key_file"]).read_text()
            except OSError as exc:
                raise SourceError(f"connection {self.entra_conn_id!r}: cannot read certificate_key_file: {exc}") from None
        if not conn.password and not key:
            raise SourceError(f"connection {self.entra_conn_id!r} needs a client secret (password) or a certificate")
        return GraphSettings(
            tenant_id=conn.host, client_id=conn.login, client_secret=conn.password or None,
            certificate_key=key, certificate_thumbprint=extra.get("certificate_thumbprint"),
            authority_host=extra.get("authority_host") or AUTHORITY_HOST, graph_url=extra.get("graph_url") or GRAPH,
            ca_certs_file=extra.get("ca_certs_file") or None, timeout=float(extra.get("timeout", 60)),
            max_retries=int(extra.get("max_retries", 5)), max_wait=float(extra.get("max_wait", 120)),
        )

    def make_client(self, settings: GraphSettings) -> GraphClient:
        return GraphClient(settings)

    def probe(self, client: GraphClient) -> str:
        client.get("v1.0/users", {"$select": "id", "$top": "1"})
        return f"Microsoft Graph answered for tenant {client.settings.tenant_id} (users readable)"
