"""Cisco UCM AXL hook: an Airflow Connection (type ``usersync_axl``) → ``AxlSettings`` / a ready client.

The connection's fields and extras are read by ``AxlSettings.from_connection``, which lists them.
"""

from __future__ import annotations

from typing import Any

from usersync.sources.cucm.reader import AxlSettings
from usersync_airflow.hooks.client_hook import ClientHook
from usersync_airflow.hooks.connections import connection_fields


class AxlHook(ClientHook):
    conn_name_attr = "axl_conn_id"
    default_conn_name = "usersync_axl_default"
    conn_type = "usersync_axl"
    source_type = "cucm"
    hook_name = "usersync Cisco UCM (AXL)"

    def __init__(self, axl_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(axl_conn_id, **kwargs)

    def get_settings(self) -> AxlSettings:
        return AxlSettings.from_connection(connection_fields(self.conn_id))
