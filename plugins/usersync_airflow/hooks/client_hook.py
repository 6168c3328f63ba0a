"""What the hooks of a source share (as the SMTP provider's hook does): the connection id is stored, the client
is built lazily from ``get_settings()``, and ``test_connection()`` — the UI's Test button — runs the registered
reader's own factory and ``check()`` on the connection, exactly as a run's ``check_source`` does, so a green Test
and a failing run cannot disagree on how the source is reached."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseHook

from usersync.sources.base import Source
from usersync.sources.errors import SourceError
from usersync.sources.read_state import SourceInfo
from usersync.sources.registry import reader_class, spec_class
from usersync.sources.spec import SourceSpecBase
from usersync_airflow.hooks.connections import connection_fields, search_tests

#: the source name a Test reads under (a rules file's own name is not known to a connection)
TEST_SOURCE = "connection-test"


def test_spec(source_type: str, conn_id: str, **options: Any) -> SourceSpecBase:
    """A source of ``source_type`` on connection ``conn_id`` with the type's defaults: what a Test reads."""
    spec = spec_class(source_type)
    assert spec is not None, f"{source_type} is a registered source type"
    return spec.model_validate({"type": source_type, "name": TEST_SOURCE, "conn_id": conn_id, "domain": "TEST",
                                **options})


def test_reader(source_type: str, conn_id: str) -> Source:
    """The registered reader of ``source_type``, built by its own factory from the connection."""
    spec = test_spec(source_type, conn_id)
    return reader_class(spec).from_rules(spec, spec.own_attributes(), connection_fields(conn_id, spec), {})


def checked(info: SourceInfo) -> str:
    """What the Test button shows of a reader's ``check()``: where it read, how many users are in scope (when
    the source says), what scopes the read, then its warnings."""
    line = f"readable at {info.get('url')}"
    if "users" in info:
        line += f": {info['users']} user(s)"
    scope = [f"{k} {v}" for k, v in (info.get("where") or {}).items()]
    return "; ".join([line, *scope, *info.get("warnings", [])])


class ClientHook(BaseHook):
    """Subclasses set ``conn_name_attr`` and ``source_type``: the client is the registered reader's own, built by
    its factory from the connection."""

    conn_name_attr: str
    #: the registered source type whose reader (and client) the hook is
    source_type: ClassVar[str]

    def __init__(self, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        setattr(self, self.conn_name_attr, conn_id)
        self._source: Source | None = None

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    def get_conn(self) -> Any:
        """The reader's client (Graph, SCIM, AXL), built on first use and reused after."""
        if self._source is None:
            self._source = test_reader(self.source_type, self.conn_id)
        return self._source.client  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def test_connection(self) -> tuple[bool, str]:
        """The reader's ``check()``, then the search of every rules file using this connection (count and
        sample entries as the rules map them): the same reads a run makes."""
        try:
            with test_reader(self.source_type, self.conn_id) as source:
                line = checked(source.check())
        except SourceError as exc:
            return False, str(exc)
        ok, searched = search_tests(self.conn_id)
        return ok, " | ".join([line, *searched])
