"""Cisco UCM AXL hook: an Airflow Connection (type ``usersync_axl``) → ``AxlSettings`` / a ready client.

Connection fields: host (the publisher), port (8443), login (an application user with "Standard AXL Read Only
API Access"), password. Extras: ``axl_version`` (e.g. 12.5, 14.0, 15.0; default 14.0), ``ca_certs_file``,
``timeout`` (s), ``max_retries``, ``backoff_seconds``.
"""

from __future__ import annotations

from typing import Any

from usersync.sources.cucm.reader import AxlClient, AxlSettings
from usersync.sources.errors import SourceError
from usersync_airflow.hooks.client_hook import ClientHook


class AxlHook(ClientHook):
    conn_name_attr = "axl_conn_id"
    default_conn_name = "usersync_axl_default"
    conn_type = "usersync_axl"
    hook_name = "usersync Cisco UCM (AXL)"

    def __init__(self, axl_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(axl_conn_id, **kwargs)

    def get_settings(self) -> AxlSettings:
        conn = self.get_connection(self.axl_conn_id)
        extra = conn.extra_dejson
        if not conn.host or not conn.login:
            raise SourceError(f"connection {self.axl_conn_id!r} needs a host and a login")
        version = str(extra.get("axl_version", "14.0"))
        if not version.replace(".", "").isdigit():
            raise SourceError(f"connection {self.axl_conn_id!r}: axl_version {version!r} is not like 14.0")
        return AxlSettings(
            host=conn.host, login=conn.login, password=conn.password or "", port=int(conn.port or 8443),
            version=version, ca_certs_file=extra.get("ca_certs_file") or None,
            timeout=float(extra.get("timeout", 60)), max_retries=int(extra.get("max_retries", 5)),
            backoff_seconds=float(extra.get("backoff_seconds", 2.0)),
        )

    def make_client(self, settings: AxlSettings) -> AxlClient:
        return AxlClient(settings)

    def probe(self, client: AxlClient) -> str:
        client.list_users("%", ["userid"], 0, 1)
        return f"AXL {client.settings.version} answered at {client.settings.url}"
