"""The search test (real slapd): the connection's Test button and ``usersync-db test-search`` run the rules' real
search — count and sample entries as the rules map them — so a scope that binds fine but finds nobody shows
before a run has to stop on it."""

from __future__ import annotations

import pytest

from devtools.ad_data import EMPTY_OU_DN
from tests.support.rules import ad_rules

pytestmark = pytest.mark.airflow


def _rules(airflow_env, ldap, **source):
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    data = ad_rules(**source)
    data["source"]["name"] = "corp"
    return airflow_env.rules(data)


def test_the_test_button_runs_the_rules_search_and_shows_count_and_mapped_samples(airflow_env, make_slapd):
    from usersync_airflow.hooks.ldap import LdapHook

    ldap = make_slapd(25)
    ldap.modify_user(7, mail="broken")
    _rules(airflow_env, ldap)
    ok, message = LdapHook("corp_ldap").test_connection()
    assert ok, message
    parts = message.split(" | ")
    assert parts[0].startswith("bound to ldaps://127.0.0.1:")
    assert parts[1].startswith("source corp: the rules' search at ldaps://127.0.0.1:") and \
        parts[1].endswith("returned 25 entries")
    assert parts[2].strip() == ("user000000 (EXAMPLE\\user000000): first_name='John', "
                                "last_name='Smith', email='john.smith.0@example.test', department='Sales', "
                                "extension='10000', language='en', enabled=True")
    assert len([p for p in parts if p.startswith("  user0000")]) == 3
    assert "1 of them would be skipped by the mapping, the first: cn=Sara Smith 7,cn=Users,dc=example,dc=test: email: not an e-mail address" in message
    assert ldap.service_password not in message


def test_a_scope_that_binds_but_finds_nobody_fails_the_test_button_and_the_command(airflow_env, make_slapd, capsys):
    from usersync_airflow.cli.db import main
    from usersync_airflow.hooks.ldap import LdapHook

    ldap = make_slapd(5)
    path = _rules(airflow_env, ldap, object_path=EMPTY_OU_DN)
    ok, message = LdapHook("corp_ldap").test_connection()
    assert not ok and message.startswith("bound to")  # the bind alone would have been green
    assert "source corp: the rules' search at" in message and "returned 0 entries" in message
    assert "nobody: a run would stop here" in message

    assert main(["test-search", str(path)]) == 1
    assert "returned 0 entries" in capsys.readouterr().out
    path = _rules(airflow_env, ldap)
    assert main(["test-search", str(path), "--samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "returned 5 entries" in out and out.count("(EXAMPLE\\user00000") == 1


def test_the_command_names_a_refused_bind_without_the_password(airflow_env, make_slapd, capsys):
    from usersync_airflow.cli.db import main

    ldap = make_slapd(2)
    path = _rules(airflow_env, ldap)
    airflow_env.connection("corp_ldap", **{**ldap.connection_extra(), "password": "Wrong-Secret-9"})
    assert main(["test-search", str(path)]) == 1
    err = capsys.readouterr().err
    assert "invalid credentials" in err and "Wrong-Secret-9" not in err
