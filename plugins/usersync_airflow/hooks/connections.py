"""Builds the domain ``Source`` a rules file describes, from Airflow Connections and trigger parameters.

Nothing here knows a source type: the registry names each type's reader, the reader builds itself from the
connection's fields (``usersync.core.connection.ConnectionFields``) and the run's parameters, and the type's
spec says which of the connection's secrets its server rotates (kept here between runs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook, Variable

from usersync.core.connection import ConnectionFields
from usersync.rules import Rules
from usersync.sources.base import Source
from usersync.sources.registry import reader_class, writer_class
from usersync.sources.spec import SourceSpecBase
from usersync.sources.writer import DirectoryWriter


def connection_fields(conn_id: str, spec: SourceSpecBase | None = None) -> ConnectionFields:
    """An Airflow Connection's fields as plain data for the domain (raises when it is not defined), with the
    secrets ``spec``'s type rotates as the last run kept them."""
    return fields_of(BaseHook.get_connection(conn_id), spec)


def fields_of(conn: Any, spec: SourceSpecBase | None = None) -> ConnectionFields:
    own = conn.extra_dejson
    rotated = type(spec).rotated_secrets(conn.conn_type, own) if spec is not None else ()
    kept = {name: value for name in rotated if (value := _kept(conn.conn_id, own, name))}
    return ConnectionFields(
        conn_id=conn.conn_id, conn_type=conn.conn_type, host=conn.host, port=conn.port, login=conn.login,
        password=conn.password, schema=conn.schema, extra={**own, **kept},
        keep=lambda name, value: _keep(conn.conn_id, name, value, own),
    )


def kept_variable(conn_id: str, name: str) -> str:
    """The Airflow Variable that keeps a secret a server renewed for a connection (e.g. Webex's refresh token);
    its name holds "token", so Airflow masks its value in the UI and in logs."""
    return f"usersync_kept_token__{conn_id}__{name}"


def _origin(own: dict[str, Any], name: str) -> str:
    """Which of the connection's own secrets a kept one was renewed from (a digest, never the secret)."""
    return hashlib.sha256(str(own.get(name) or "").encode()).hexdigest()


def _kept(conn_id: str, own: dict[str, Any], name: str) -> str | None:
    """A secret renewed by an earlier run: it replaces the connection's own — unless an admin has put a new one in
    the connection since (then the kept one, renewed from the old, is stale and the connection's wins)."""
    try:
        stored = Variable.get(kept_variable(conn_id, name), default=None, deserialize_json=True)
    except Exception:  # noqa: BLE001 - outside a task (a hook's Test button in the API server), or not ours
        return None
    if isinstance(stored, dict) and stored.get("origin") == _origin(own, name) and stored.get("value"):
        return str(stored["value"])
    return None


def _keep(conn_id: str, name: str, value: str, own: dict[str, Any]) -> None:
    Variable.set(kept_variable(conn_id, name), {"origin": _origin(own, name), "value": value}, serialize_json=True,
                 description=f"renewed by usersync for connection {conn_id}")


def open_source(rules: Rules, params: Mapping[str, Any], attributes: list[str] | None = None) -> Source:
    """The rules' source reader, asking for ``attributes`` (default: every attribute the rules read)."""
    spec = rules.source
    conn_id = spec.connection_id()
    connection = connection_fields(conn_id, spec) if conn_id else None
    return reader_class(spec).from_rules(spec, attributes or rules.source_attributes(), connection, params)


def open_writer(rules: Rules) -> DirectoryWriter:
    """The writer that takes values back to the rules' source (not yet connected: ``with`` opens it)."""
    spec = rules.source
    conn_id = spec.connection_id()
    assert conn_id is not None, "only sources reached through a connection are written back"
    return writer_class(spec).from_rules(spec, connection_fields(conn_id, spec))


def search_tests(conn_id: str) -> tuple[bool, list[str]]:
    """The search test (``usersync.run.search_test``) of every rules file whose source uses ``conn_id``: what the
    connection's Test button adds to the bind (False when a search failed or found nobody)."""
    from usersync.rules.loader import load_rules_dir
    from usersync_airflow.rules_location import rules_dir

    valid, _errors = load_rules_dir(rules_dir())
    ok, lines = True, list[str]()
    for rules, _path in sorted(valid.values(), key=lambda v: v[0].source.name):
        if rules.source.connection_id() == conn_id:
            passed, said = search_rules(rules)
            ok, lines = ok and passed, [*lines, *said]
    return ok, lines


def search_rules(rules: Rules) -> tuple[bool, list[str]]:
    """One rules file's search test on its own connection: (passed, what it says)."""
    from usersync.run.search_test import search_test
    from usersync.sources.errors import SourceError

    try:
        with open_source(rules, {}) as source:
            result = search_test(source, rules)
    except SourceError as exc:
        return False, [f"source {rules.source.name}: the rules' search failed: {exc}"]
    return result.ok, result.lines()
