"""Every source type usersync can read: one line each, the spec (what a rules file may say) and the reader.

Adding a source type: its package ``usersync/sources/<type>/`` (``spec.py`` with a ``SourceSpecBase``
subclass, ``reader.py`` with a ``Source`` subclass, ``writer.py`` with a ``DirectoryWriter`` if it takes values
back) and one line in ``_TYPES``. Rules validation, error
locations, the DAGs and the Airflow adapter take everything else from here. Readers are named, not imported,
so parsing rules (every DAG file parse) never loads an LDAP, HTTP or AXL client.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from usersync.sources.csvfile.spec import CsvSourceSpec
from usersync.sources.cucm.spec import CucmSourceSpec
from usersync.sources.database.spec import DatabaseSourceSpec
from usersync.sources.entra.spec import EntraSourceSpec
from usersync.sources.ldap.spec import ActiveDirectorySourceSpec, LdapSourceSpec
from usersync.sources.scim.spec import ScimSourceSpec
from usersync.sources.spec import SourceSpecBase

if TYPE_CHECKING:
    from usersync.sources.base import Source
    from usersync.sources.writer import DirectoryWriter


@dataclass(frozen=True)
class SourceType:
    """One kind of source: its rules spec, where its reader lives (``module:Class``) and, for sources that take
    values back (``write_back``), where its writer lives."""

    spec: type[SourceSpecBase]
    reader: str
    writer: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.type_names()

    def reader_class(self) -> type[Source]:
        return _named(self.reader)

    def writer_class(self) -> type[DirectoryWriter]:
        if self.writer is None:
            raise ValueError(f"{self.names[0]} sources are read only")
        return _named(self.writer)


def _named(where: str) -> Any:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


_TYPES = (
    SourceType(ActiveDirectorySourceSpec, "usersync.sources.ldap.reader:LdapSource",
               "usersync.sources.ldap.writer:LdapWriter"),
    SourceType(LdapSourceSpec, "usersync.sources.ldap.reader:LdapSource", "usersync.sources.ldap.writer:LdapWriter"),
    SourceType(DatabaseSourceSpec, "usersync.sources.database.reader:DatabaseSource"),
    SourceType(CsvSourceSpec, "usersync.sources.csvfile.reader:CsvSource"),
    SourceType(CucmSourceSpec, "usersync.sources.cucm.reader:CucmSource"),
    SourceType(EntraSourceSpec, "usersync.sources.entra.reader:EntraSource",
               "usersync.sources.entra.writer:EntraWriter"),
    SourceType(ScimSourceSpec, "usersync.sources.scim.reader:ScimSource"),
)

#: ``source.type`` → its ``SourceType``
SOURCE_TYPES: dict[str, SourceType] = {name: t for t in _TYPES for name in t.names}

if TYPE_CHECKING:  # mypy sees one base class; pydantic sees the tagged union of every registered spec
    SourceSpec = SourceSpecBase
else:
    SourceSpec = Annotated[Union[tuple(t.spec for t in _TYPES)], Field(discriminator="type")]  # noqa: UP007 - built at run time


def spec_class(type_name: Any) -> type[SourceSpecBase] | None:
    """The spec class of a ``source.type`` value as written in a rules file (None: not a known type)."""
    found = SOURCE_TYPES.get(type_name) if isinstance(type_name, str) else None
    return found.spec if found else None


def reader_class(spec: SourceSpecBase) -> type[Source]:
    """The reader of a validated spec (imported now, at run time)."""
    return SOURCE_TYPES[spec.type].reader_class()


def writes_back(type_name: str) -> bool:
    """Whether sources of this type can take values back (they have a writer)."""
    found = SOURCE_TYPES.get(type_name)
    return found is not None and found.writer is not None


def writer_class(spec: SourceSpecBase) -> type[DirectoryWriter]:
    """The writer of a validated spec (imported now, at run time); ValueError for a read-only type."""
    return SOURCE_TYPES[spec.type].writer_class()
