"""Builds the domain ``Source`` a rules file describes, from Airflow Connections and trigger parameters.

Adding a source type: a module in ``usersync.sources``, a spec in ``usersync.rules.model``, one branch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from usersync.rules.model import Rules
from usersync.sources.cucm.reader import CucmSource
from usersync.sources.base import Source
from usersync.sources.csvfile.reader import CsvSource, resolve_import
from usersync.sources.database.reader import DatabaseSource
from usersync.sources.entra.reader import EntraSource
from usersync.sources.errors import SourceQueryError
from usersync.sources.ldap.reader import LdapSource
from usersync_airflow.hooks import AxlHook, EntraHook, LdapHook, connection_url
from usersync_airflow.paths import configured


def imports_dir(rules: Rules) -> Path:
    return configured(getattr(rules.source, "imports_dir", None), "USERSYNC_IMPORTS_DIR", "imports")


def open_source(rules: Rules, params: dict[str, Any]) -> Source:
    spec, attributes = rules.source, rules.source_attributes()
    if spec.type in ("active_directory", "ldap"):
        return LdapSource(spec, LdapHook(spec.conn_id).get_settings(), attributes)
    if spec.type == "database":
        return DatabaseSource(spec, connection_url(BaseHook.get_connection(spec.conn_id)), attributes)
    if spec.type == "csv":
        name = (params.get("file") or "").strip()
        if not name:
            raise SourceQueryError("no CSV file given: trigger the import with the parameter 'file'")
        return CsvSource(spec, resolve_import(imports_dir(rules), name), attributes)
    if spec.type == "cucm":
        return CucmSource(spec, AxlHook(spec.conn_id).get_settings(), attributes)
    if spec.type == "entra_id":
        return EntraSource(spec, EntraHook(spec.conn_id).get_settings(), attributes)
    raise SourceQueryError(f"source type {spec.type!r} has no reader")  # unreachable: rules validation
