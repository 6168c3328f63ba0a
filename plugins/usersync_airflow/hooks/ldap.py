"""LDAP / Active Directory hook: an Airflow Connection → an open ``LdapDirectory``.

Connection fields: host, port (optional), login (bind DN or user@domain), password. Extras:
``security_mode`` (SecureOnly | SecureThenUnsecure | UnSecureOnly; default SecureOnly), ``start_tls``
(bool), ``ldaps_port`` (636), ``ldap_port`` (389), ``ca_certs_file`` (PEM bundle), ``connect_timeout``,
``receive_timeout`` (seconds). When ``port`` is set it is the port of the first channel tried.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from usersync.sources.errors import SourceError
from usersync.sources.ldap.reader import LdapDirectory, LdapSettings, SecurityMode


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}


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
        conn = self.get_connection(self.ldap_conn_id)
        extra = conn.extra_dejson
        if not conn.host:
            raise SourceError(f"connection {self.ldap_conn_id!r} has no host")
        mode_name = extra.get("security_mode", SecurityMode.SECURE_ONLY.value)
        try:
            mode = SecurityMode(mode_name)
        except ValueError:
            allowed = ", ".join(m.value for m in SecurityMode)
            raise SourceError(f"connection {self.ldap_conn_id!r}: security_mode {mode_name!r} is not one of {allowed}") from None
        start_tls = _flag(extra.get("start_tls", False))
        ldaps_port = int(extra.get("ldaps_port", 636))
        ldap_port = int(extra.get("ldap_port", 389))
        if conn.port:
            if mode is SecurityMode.UNSECURE_ONLY or start_tls:
                ldap_port = int(conn.port)
            else:
                ldaps_port = int(conn.port)
        return LdapSettings(
            host=conn.host,
            login=conn.login or None,
            password=conn.password or None,
            mode=mode,
            start_tls=start_tls,
            ldaps_port=ldaps_port,
            ldap_port=ldap_port,
            ca_certs_file=extra.get("ca_certs_file") or None,
            connect_timeout=int(extra.get("connect_timeout", 10)),
            receive_timeout=int(extra.get("receive_timeout", 120)),
        )

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
        try:
            directory = self.get_conn()
            base = directory.default_users_base()
            return True, f"bound to {directory.url}; default users container {base}"
        except SourceError as exc:
            return False, str(exc)
        finally:
            self.close()
