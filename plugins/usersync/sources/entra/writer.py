"""Write-back to Microsoft Entra ID through Graph: ``PATCH /users/{id}`` per value, in the documented request
shape (``businessPhones`` as a one-number list, ``extensionAttributeN`` inside ``onPremisesExtensionAttributes``).

Graph has no conditional update for users (no ETag / If-Match on directory objects), so each batch of users is
read again (``$filter=id in (…)``, 15 ids a request) just before it is written, and a value that is no longer the
one the run read is reported, not overwritten. Throttling (429 / 503 with Retry-After) is waited out as for
reads; a refused permission or an on-premises-mastered user fails that value, in words, and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from usersync.core.connection import ConnectionFields
from usersync.sources.entra.graph_client import GraphClient, GraphError, GraphSettings, graph_settings
from usersync.sources.entra.reader import flatten
from usersync.sources.planned_write import Write, shown
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase
from usersync.sources.writer import CHANGED, FAILED, WRITTEN, DirectoryWriter, Outcome

log = logging.getLogger(__name__)
#: ids per re-read: Graph takes up to 15 values in one ``in`` filter
REREAD_IDS = 15
EXTENSION = "extensionAttribute"
#: what Graph says when a property of a user synced from on-premises AD may only be written there
ON_PREMISES = "on-premises mastered"


def body(attribute: str, value: str | None) -> dict[str, Any]:
    """The PATCH body that sets ``attribute`` to ``value`` (None clears it)."""
    if attribute == "businessPhones":
        return {"businessPhones": [value] if value is not None else []}
    if attribute.startswith(EXTENSION):
        return {"onPremisesExtensionAttributes": {attribute: value}}
    return {attribute: value}


def _selected(attributes: set[str]) -> str:
    props = {"id"} | {"onPremisesExtensionAttributes" if a.startswith(EXTENSION) else a for a in attributes}
    return ",".join(sorted(props))


class EntraWriter(DirectoryWriter):
    def __init__(self, settings: GraphSettings):
        self.settings = settings
        self.client: GraphClient | None = None

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, connection: ConnectionFields) -> EntraWriter:
        return cls(graph_settings(connection))

    @classmethod
    def target_of(cls, record: SourceRecord) -> str:
        return record.get("id") or record.account  # PATCH /users/{id}

    def open(self) -> None:
        if self.client is None:
            self.client = GraphClient(self.settings)
            self.client.token()  # refused credentials stop here, before any value

    def write(self, writes: Sequence[Write]) -> Iterator[Outcome]:
        batch: list[Write] = []
        for write in writes:
            if write.target not in {w.target for w in batch} and len({w.target for w in batch}) == REREAD_IDS:
                yield from self._batch(batch)
                batch = []
            batch.append(write)
        if batch:
            yield from self._batch(batch)

    def _batch(self, writes: list[Write]) -> Iterator[Outcome]:
        assert self.client is not None, "open() first"
        ids = sorted({w.target for w in writes})
        found = self.client.get("v1.0/users", {
            "$filter": "id in (" + ",".join(f"'{i}'" for i in ids) + ")",
            "$select": _selected({w.attribute for w in writes}),
        })
        now = {user["id"]: flatten(user) for user in found["value"]}
        for write in writes:
            if write.target not in now:
                yield Outcome(CHANGED, f"user {write.target} was not found when read again (deleted since the run "
                                       "read it, or not yet on the replica that answered)")
            elif now[write.target].get(write.attribute) != write.old:
                yield Outcome(CHANGED, f"{write.attribute} is {shown(now[write.target].get(write.attribute))} now, "
                                       f"not {shown(write.old)} as the run read it: changed meanwhile, left as it is")
            else:
                yield self._patch(write)

    def _patch(self, write: Write) -> Outcome:
        assert self.client is not None
        try:
            self.client.patch(f"v1.0/users/{write.target}", body(write.attribute, write.new))
        except GraphError as exc:
            if exc.status == 404:
                return Outcome(CHANGED, f"user {write.target} no longer exists (Graph 404 {exc.code})")
            if exc.status == 403:
                return Outcome(FAILED, f"permission refused: the app {self.settings.client_id} may not update users "
                                       f"(Graph 403 {exc.code}: {exc.graph_message}); grant it the application "
                                       "permission User.ReadUpdate.All (or User.ReadWrite.All), with admin consent")
            if ON_PREMISES in exc.graph_message.lower():
                return Outcome(FAILED, f"the user is synchronised from on-premises Active Directory, so Entra ID "
                                       f"refuses {write.attribute} (Graph {exc.status} {exc.code}: "
                                       f"{exc.graph_message}); write it back to AD instead")
            return Outcome(FAILED, f"Graph refused {write.attribute}: {exc.status} {exc.code}: {exc.graph_message}")
        return Outcome(WRITTEN)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
