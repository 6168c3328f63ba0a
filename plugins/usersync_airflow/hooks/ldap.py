"""LDAP / Active Directory hook: an Airflow Connection → an open ``LdapDirectory``.

The connection's fields and extras are read by ``LdapSettings.from_connection``, which lists them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from usersync.sources.errors import SourceError
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings
from usersync.sources.ldap.reader import LdapSource
from usersync_airflow.hooks.client_hook import test_reader
from usersync_airflow.hooks.connections import connection_fields, search_tests


class LdapHook(BaseHook):
    conn_name_attr = "ldap_conn_id"
    default_conn_name = "usersync_ldap_default"
    conn_type = "usersync_ldap"
    hook_name = "usersync LDAP / Active Directory"

    def __init__(self, ldap_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ldap_conn_id = ldap_conn_id
        self._directory: LdapDirectory | None = None

    def get_settings(self) -> LdapSettings:
        return LdapSettings.from_connection(connection_fields(self.ldap_conn_id))

    def get_conn(self) -> LdapDirectory:
        """The bound directory, opened on first use and reused after."""
        if self._directory is None:
            self._directory = LdapDirectory.open(self.get_settings())
        return self._directory

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    def test_connection(self) -> tuple[bool, str]:
        """The reader's own ``check()`` against every domain controller the connection names, one by one: green
        only when all answer, and the message says how each did (a DC under maintenance shows here before a run
        has to skip it)."""
        try:
            reader = test_reader("ldap", self.ldap_conn_id)
        except SourceError as exc:
            return False, str(exc)
        assert isinstance(reader, LdapSource)
        results, ok = [], True
        for one in reader.settings.per_host():
            try:
                with LdapSource(reader.spec, one, reader.attributes) as source:
                    info = source.check()
                results.append(f"bound to {info.get('url')}; base {(info.get('where') or {}).get('base')}")
            except SourceError as exc:
                ok = False
                results.append(f"{one.hosts[0]}: {exc}")
        searched_ok, searched = search_tests(self.ldap_conn_id)
        return ok and searched_ok, " | ".join([*results, *searched])
