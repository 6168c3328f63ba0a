"""What a reader found when it checked the source (``SourceInfo``), and where it stands: the position a delta
read continues from, kept between runs.

The position is the reader's own: only the reader that wrote it interprets it (Active Directory: the domain
controller's database identity and its USN; Microsoft Graph: the delta link). Everyone else — the run, the
users database — carries it as JSON and asks the reader whether it still holds (``Source.position_holds``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class SourceInfo(TypedDict, total=False):
    """What ``Source.check()`` found, handed from step to step (JSON, no secrets). The keys every reader
    shares are named here; what only one reader reads back (a DC it chose, a page size a provider allows) is in
    ``own``, which no one else interprets."""

    url: str  # where the source is, without secrets
    warnings: list[str]
    where: dict[str, str]  # what scopes the read, for messages (base, filter, table, file, scope)
    users: int  # how many users are in scope, when the source says so without reading them
    own: dict[str, Any]  # the reader's own facts, read back only by it
    position: dict[str, Any]  # delta-capable sources: where the source stands now (``ReadPosition.to_json()``)
    read: dict[str, Any]  # the run's delta-or-full decision (``ReadPlan.to_json()``), set by ``check_source``
    reading: str  # that decision in words, for the report
    account: str  # a single-account run: the account it reads


def own(info: SourceInfo) -> dict[str, Any]:
    """The reader's own facts of ``info`` ({} when it kept none)."""
    return info.get("own") or {}


@dataclass(frozen=True)
class ReadPosition:
    """``server``: where the source was read (a DC's service name, a tenant); ``position``: how far, as only
    its reader understands it."""

    server: str
    position: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.position.get(name, default)

    def with_(self, **changes: Any) -> ReadPosition:
        """The same position with ``changes`` (e.g. the delta link a read ended with)."""
        return ReadPosition(self.server, {**self.position, **changes})

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "position": dict(self.position)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReadPosition:
        return cls(str(data["server"]), dict(data.get("position") or {}))


def since_of(info: SourceInfo) -> ReadPosition | None:
    """The stored position a delta read continues from (``check_source``'s decision in ``info["read"]``)."""
    read = info.get("read") or {}
    return ReadPosition.from_json(read["since"]) if read.get("mode") == "delta" and read.get("since") else None
