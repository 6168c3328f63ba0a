"""What every source implements. Only reading differs between sources: mapping, diff, safety, apply and the
report are shared, so a new source type is one module here plus its construction in the Airflow adapter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterator

from usersync.plan.mapping import SourceRecord


class Source(ABC):
    """An external directory of users.

    ``check()`` connects and proves the source can be read (credentials, TLS, object path, columns); it returns
    JSON-able facts for the report and for ``records()``: at least ``url`` (where, without secrets) and
    ``warnings`` (a list of strings). ``records(info)`` then reads every user, streaming.
    """

    @abstractmethod
    def check(self) -> dict[str, Any]: ...

    @abstractmethod
    def records(self, info: dict[str, Any]) -> Iterator[SourceRecord]: ...

    def partition(self, info: dict[str, Any], index: int, count: int) -> Iterator[SourceRecord]:
        """Partition ``index`` of ``count`` of the records (disjoint, together all of them).

        Sources that cannot split their read are read whole, as the one partition there is.
        """
        if count != 1:
            raise ValueError(f"{type(self).__name__} reads in one partition, not {count}")
        return self.records(info)

    def removed(self, info: dict[str, Any], in_scope: set[str]) -> tuple[list[str], int]:
        """On a delta read, the anchors of accounts gone since the watermark (and entries read to find them);
        ``in_scope``: the anchors of the changed entries the read returned.

        Sources read whole have none: what they do not return is gone.
        """
        return [], 0

    def close(self) -> None:
        """Release connections; safe to call more than once."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def missing(wanted: list[str], present: list[str]) -> list[str]:
    """The wanted attributes that ``present`` lacks, compared case-insensitively (like ``SourceRecord.get``)."""
    have = {p.lower() for p in present}
    return [w for w in wanted if w.lower() not in have]
