"""What every source implements. Only reading differs between sources: mapping, diff, safety, apply and the
report are shared, so a new source type is its reader, its spec and one line in ``usersync.sources.registry``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from usersync.core.connection import ConnectionFields
from usersync.sources.read_state import ReadPosition, SourceInfo
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase


@dataclass
class ScopeCheck:
    """One test of a source's scope on one account (object path, filter, group, disabled state…)."""

    what: str
    passed: bool
    why: str

    def line(self) -> str:
        return f"{'passed' if self.passed else 'FAILED'}: {self.what} — {self.why}"


@dataclass
class OneAccount:
    """One account read on demand (``Source.read_one``): the entry as the source holds it, found by the server
    whatever the rules' scope, and each scope test the rules make, each answered by the server where it can.

    ``record`` None: the source holds no such account. ``requests`` and ``entries`` count what finding it took:
    the requests sent and the entries the server returned, so a single-account run shows it read one entry (the
    scope tests that follow ask about that entry only).
    """

    asked: str
    record: SourceRecord | None = None
    found_by: str = ""  # how the server was asked: the filter, the path, the WHERE clause
    checks: list[ScopeCheck] = field(default_factory=list)
    requests: int = 0
    entries: int = 0

    @property
    def in_scope(self) -> bool:
        return self.record is not None and all(c.passed for c in self.checks)


class Source(ABC):
    """An external directory of users.

    ``check()`` connects and proves the source can be read (credentials, TLS, object path, columns); it returns
    JSON-able facts for the report and for ``records()``: at least ``url`` (where, without secrets) and
    ``warnings`` (a list of strings). ``records(info)`` then reads every user, streaming.
    """

    #: the rules' source section this reader was built from
    spec: SourceSpecBase
    #: why a delta read had to read in full instead (e.g. an expired delta link), for the report
    fallback: str | None = None
    #: where the next delta read starts, for sources whose server hands out a cursor (Graph's delta link)
    cursor: str | None = None
    #: what the read met that the admin should know (for the report), besides ``check()``'s warnings
    warnings: list[str] | tuple[str, ...] = ()
    #: a column of the records that names one entity, for sources that may list an entity more than once in a
    #: read (each time with its state then): the last record per value is kept
    unique_by: str | None = None
    #: what to look at when a read found nobody (the error names the source's own settings)
    empty_hint = "wrong object path, filter or query? lost read permission? empty file?"

    @classmethod
    @abstractmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> Source:
        """The reader a rules file describes: ``connection`` is the spec's ``connection_id()`` resolved (None
        for file sources), ``params`` the run's trigger parameters."""

    @abstractmethod
    def check(self) -> SourceInfo: ...

    @abstractmethod
    def records(self, info: SourceInfo) -> Iterator[SourceRecord]: ...

    def partition(self, info: SourceInfo, index: int, count: int) -> Iterator[SourceRecord]:
        """Partition ``index`` of ``count`` of the records (disjoint, together all of them).

        Sources that cannot split their read are read whole, as the one partition there is.
        """
        if count != 1:
            raise ValueError(f"{type(self).__name__} reads in one partition, not {count}")
        return self.records(info)

    def removed(self, info: SourceInfo, in_scope: set[str]) -> tuple[list[str], int]:
        """On a delta read, the anchors of accounts gone since the watermark (and entries read to find them);
        ``in_scope``: the anchors of the changed entries the read returned.

        Sources read whole have none: what they do not return is gone.
        """
        return [], 0

    @abstractmethod
    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """Only the account ``account`` names (its key, an anchor or a DN, as the source type allows), with the
        server doing the search; and whether the rules' scope takes it in, test by test."""

    def lookup(self, info: SourceInfo, key: str | None, anchor: str | None) -> OneAccount:
        """One account by what the users table keeps of it — its key (account name) and its anchor — to confirm,
        before its user is removed, that the source no longer has it in scope. The default asks ``read_one`` by
        the key, else the anchor; a source whose server finds an account by its anchor does better."""
        return self.read_one(info, key or anchor or "")

    # --- delta reads: the position a read continues from (``usersync.sources.read_state``) ------------------
    # ``check()`` of a delta-capable reader puts where the source stands now in ``info["position"]``
    # (``ReadPosition.to_json()``); the run stores it when it applies, and a later run asks the reader whether
    # the stored one still holds.

    def position_holds(self, stored: ReadPosition, now: ReadPosition) -> str | None:
        """None when a delta read may continue from ``stored`` (this reader's own position) with the source
        standing at ``now``; else why not, in words an admin can act on (the run then reads in full)."""
        if stored.server != now.server:
            return f"another server ({now.server}; the watermark is of {stored.server})"
        return None

    def describe_position(self, stored: ReadPosition) -> str:
        """What a delta read from ``stored`` reads, for the report."""
        return "changes since the stored position"

    def close(self) -> None:  # noqa: B027 - optional: sources without connections have nothing to release
        """Release connections; safe to call more than once."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shifted_listing(what: str) -> str:
    """The warning a read gives when its listing moved under it while it paged."""
    return (f"{what}: users were added or deleted during the read, so pages may have shifted; every removal is "
            "confirmed with the source account by account")


def missing(wanted: list[str], present: list[str]) -> list[str]:
    """The wanted attributes that ``present`` lacks, compared case-insensitively (like ``SourceRecord.get``)."""
    have = {p.lower() for p in present}
    return [w for w in wanted if w.lower() not in have]
