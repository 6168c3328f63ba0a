"""What a writable source type implements to take values back (``usersync/sources/<type>/writer.py``, named in
``usersync.sources.registry``): open a connection that may write, then write each planned value only while the
directory still holds the value the run read, answering per value — written, changed meanwhile, or failed
with the reason in words. One value's failure never stops the others."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from usersync.core.connection import ConnectionFields
from usersync.sources.planned_write import Write
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

WRITTEN, CHANGED, FAILED = "written", "changed", "failed"


@dataclass(frozen=True)
class Outcome:
    """What became of one planned write: ``WRITTEN``; ``CHANGED`` — the directory no longer held the value the
    run read, so nothing was written (the next run plans again from the new value); ``FAILED`` — why, in words."""

    status: str
    message: str = ""


class DirectoryWriter(ABC):
    """Writes planned values to one source; use as a context manager (``open`` on enter, ``close`` on exit)."""

    @classmethod
    @abstractmethod
    def from_rules(cls, spec: SourceSpecBase, connection: ConnectionFields) -> DirectoryWriter:
        """The writer of a rules file's source, reached through its connection (secrets stay in it)."""

    @classmethod
    def target_of(cls, record: SourceRecord) -> str:
        """Where a record's values are written: by default the account as read (an LDAP entry's DN)."""
        return record.account

    @abstractmethod
    def open(self) -> None:
        """Connect with the right to write; a SourceError when that cannot be done (nothing is written then)."""

    @abstractmethod
    def write(self, writes: Sequence[Write]) -> Iterator[Outcome]:
        """One outcome per write, in order."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the connection; safe to call more than once."""

    def __enter__(self) -> DirectoryWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
