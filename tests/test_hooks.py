"""Hooks: connection fields → settings / engine, lazy clients, test_connection()."""

from __future__ import annotations

import pytest

from usersync.sources import SourceError
from usersync.sources.ldap.directory import SecurityMode
from usersync_airflow.hooks import LdapHook, UsersDbHook


def test_ldap_settings_from_a_connection(airflow_env):
    airflow_env.connection("dc", conn_type="usersync_ldap", host="dc1.corp.example", login="svc@corp", password="pw",
                           extra={"security_mode": "SecureThenUnsecure", "ca_certs_file": "/ca.pem", "ldap_port": 3389})
    s = LdapHook("dc").get_settings()
    assert (s.host, s.login, s.password, s.mode) == ("dc1.corp.example", "svc@corp", "pw", SecurityMode.SECURE_THEN_UNSECURE)
    assert (s.ldaps_port, s.ldap_port, s.ca_certs_file, s.start_tls) == (636, 3389, "/ca.pem", False)


@pytest.mark.parametrize(("extra", "ports"), [({}, (1636, 389)), ({"start_tls": "true"}, (636, 1636)),
                                               ({"security_mode": "UnSecureOnly"}, (636, 1636))])
def test_connection_port_is_the_port_of_the_first_channel_tried(airflow_env, extra, ports):
    airflow_env.connection("dc", conn_type="usersync_ldap", host="h", port=1636, extra=extra)
    s = LdapHook("dc").get_settings()
    assert (s.ldaps_port, s.ldap_port) == ports


def test_unknown_security_mode_is_a_clear_error(airflow_env):
    airflow_env.connection("dc", conn_type="usersync_ldap", host="h", extra={"security_mode": "Sometimes"})
    with pytest.raises(SourceError, match="security_mode 'Sometimes' is not one of SecureOnly"):
        LdapHook("dc").get_settings()


def test_ldap_test_connection_reports_success_and_failure(airflow_env, slapd):
    airflow_env.connection("dc", **slapd.connection_extra())
    ok, message = LdapHook("dc").test_connection()
    assert ok and "CN=Users,DC=example,DC=test" in message
    airflow_env.connection("dc", **{**slapd.connection_extra(), "password": "Wrong-Secret-1"})
    ok, message = LdapHook("dc").test_connection()
    assert not ok and "invalid credentials" in message and "Wrong-Secret-1" not in message


def test_ldap_hook_opens_lazily_and_reuses_its_client(airflow_env, slapd):
    airflow_env.connection("dc", **slapd.connection_extra())
    hook = LdapHook("dc")
    assert hook._directory is None
    first = hook.get_conn()
    assert hook.get_conn() is first
    hook.close()
    assert hook._directory is None


def test_users_db_from_postgres_and_sqlite_connections(airflow_env, tmp_path, pg_url):
    airflow_env.users_db(pg_url, "pg")
    hook = UsersDbHook("pg")
    assert hook.sqlalchemy_url().drivername == "postgresql+psycopg"
    assert hook.test_connection()[0]
    airflow_env.connection("lite", conn_type="sqlite", host=str(tmp_path / "u.db"))
    assert str(UsersDbHook("lite").sqlalchemy_url()) == f"sqlite:///{tmp_path / 'u.db'}"


def test_default_users_db_falls_back_to_embedded_sqlite_but_a_named_one_must_exist(airflow_env, monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowNotFoundException

    monkeypatch.setenv("USERSYNC_HOME", str(tmp_path / "home"))
    assert UsersDbHook().sqlalchemy_url().database == str(tmp_path / "home" / "users.db")
    with pytest.raises(AirflowNotFoundException):
        UsersDbHook("typo_target").sqlalchemy_url()


def test_connection_types_are_registered_through_the_provider_entry_point():
    from airflow.providers_manager import ProvidersManager

    hooks = ProvidersManager().hooks
    assert hooks["usersync_ldap"].hook_class_name == "usersync_airflow.hooks.ldap.LdapHook"
    assert hooks["usersync_users_db"].hook_class_name == "usersync_airflow.hooks.users_db.UsersDbHook"
    assert hooks["usersync_axl"].hook_class_name == "usersync_airflow.hooks.axl.AxlHook"
    assert hooks["usersync_entra"].hook_class_name == "usersync_airflow.hooks.entra.EntraHook"
    assert hooks["usersync_scim"].hook_class_name == "usersync_airflow.hooks.scim.ScimHook"
    assert hooks["usersync_webex"].hook_class_name == "usersync_airflow.hooks.scim.WebexHook"


def test_axl_settings_from_a_connection(airflow_env):
    airflow_env.connection("pbx", conn_type="usersync_axl", host="cucm-pub", login="axl", password="pw",
                           extra={"axl_version": "15.0", "ca_certs_file": "/ca.pem"})
    from usersync_airflow.hooks import AxlHook

    s = AxlHook("pbx").get_settings()
    assert (s.url, s.version, s.ca_certs_file, s.password) == ("https://cucm-pub:8443/axl/", "15.0", "/ca.pem", "pw")
    assert "pw" not in repr(s)
    airflow_env.connection("pbx", conn_type="usersync_axl", host="cucm-pub", login="axl", extra={"axl_version": "new"})
    with pytest.raises(SourceError, match="axl_version 'new'"):
        AxlHook("pbx").get_settings()


def test_database_connection_urls(airflow_env):
    from usersync.core.connection import sqlalchemy_url
    from usersync_airflow.hooks.connections import connection_fields

    airflow_env.connection("pbxdb", conn_type="mysql", host="db", port=3306, login="ro", password="pw", schema="asterisk")
    url = sqlalchemy_url(connection_fields("pbxdb"))
    assert url.drivername == "mysql+pymysql" and url.database == "asterisk" and url.password == "pw"
    assert "pw" not in url.render_as_string(hide_password=True)
    airflow_env.connection("odd", conn_type="oracle", host="db")
    with pytest.raises(ValueError, match="sqlalchemy_driver"):
        sqlalchemy_url(connection_fields("odd"))
