"""Microsoft Entra ID users through Microsoft Graph (``source.type: entra_id``).

A full read lists ``/users`` (or a group's ``transitiveMembers``) with ``$select`` of only the properties the
rules use, ``$filter`` when the rules give one, and ``$top`` pages. With ``source.delta`` every read goes
through ``/users/delta``: a full read is the delta query's first round (so it ends with a fresh delta link),
a delta read starts from the link the last successful run stored. Graph returns *only the changed properties*
of an updated user there, so the changed users are read again, whole, by id (15 per request, Graph's limit for
``id in (…)``); ``@removed`` entries are the leavers. A link Graph will no longer follow (``resyncRequired``,
``syncStateNotFound``, ``syncStateInvalid``, 410) turns the read into a full one, and the report says why.
Graph documents that one user may be listed several times in a read: the last state per id is kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from usersync.core.connection import ConnectionFields
from usersync.core.progress import Progress
from usersync.sources.base import OneAccount, ScopeCheck, Source
from usersync.sources.entra.graph_client import DeltaExpired, GraphClient, GraphError, GraphSettings, graph_settings
from usersync.sources.entra.spec import EntraSourceSpec, is_guest
from usersync.sources.errors import SourceQueryError
from usersync.sources.read_state import ReadPosition, SourceInfo, since_of
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)
UPN_PARTS = ("upnLocalPart", "upnDomain")
EXTENSIONS = tuple(f"extensionAttribute{n}" for n in range(1, 16))
ID_BATCH = 15  # Graph's limit of clauses in "id in (…)"
_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def graph_properties(attributes: list[str]) -> list[str]:
    """The ``$select`` for the attributes the rules read (``id`` and ``userPrincipalName`` always)."""
    props: list[str] = ["id", "userPrincipalName"]
    for attribute in attributes:
        prop = ("userPrincipalName" if attribute in UPN_PARTS else
                "onPremisesExtensionAttributes" if attribute in EXTENSIONS else attribute)
        if prop not in props:
            props.append(prop)
    return props


def flatten(user: dict[str, Any]) -> dict[str, str]:
    """A Graph user as record attributes: strings, the first business phone, the extension attributes, the
    two halves of the UPN; booleans as ``true``/``false``; nulls left out (read as empty)."""
    out: dict[str, str] = {}
    for prop, value in user.items():
        if prop.startswith("@") or value is None:
            continue
        if prop == "businessPhones":
            if value:
                out[prop] = str(value[0])
        elif prop == "onPremisesExtensionAttributes":
            out.update({k: str(v) for k, v in (value or {}).items() if v is not None})
        elif isinstance(value, bool):
            out[prop] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[prop] = str(value)
    upn = user.get("userPrincipalName") or ""
    if "@" in upn:
        out["upnLocalPart"], out["upnDomain"] = upn.rsplit("@", 1)
    return out


class EntraSource(Source):

    spec: EntraSourceSpec
    #: Graph may list one user more than once in a read (changed while being read): the last state per id wins
    unique_by = "id"
    empty_hint = ("wrong group_id or $filter? every account excluded (disabled_accounts, guests)? "
                  "a new, empty tenant?")

    def __init__(self, spec: EntraSourceSpec, settings: GraphSettings, attributes: list[str],
                 client: GraphClient | None = None):
        self.spec, self.settings = spec, settings
        # accountEnabled is needed to leave disabled accounts out (disabled_accounts: exclude)
        wanted = attributes + (["accountEnabled"] if spec.disabled_accounts == "exclude" else [])
        self.select = ",".join(graph_properties(wanted))
        self.client = client or GraphClient(settings)
        self._removed: list[str] = []
        self.warnings: list[str] = []

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> EntraSource:
        assert isinstance(spec, EntraSourceSpec) and connection is not None
        return cls(spec, graph_settings(connection), attributes)

    def check(self) -> SourceInfo:
        self.client.get("v1.0/users", {"$select": "id", "$top": "1"})  # token, permission, reachability
        if self.spec.group_id:
            self.client.get(f"v1.0/groups/{self.spec.group_id}", {"$select": "id,displayName"})
        info = SourceInfo(url=f"{self.settings.graph_url} (tenant {self.settings.tenant_id})", warnings=[],
                          where={"group": self.spec.group_id} if self.spec.group_id else {})
        if self.spec.delta is not None:  # the tenant is where it reads; how far is the delta link the read ends with
            info["position"] = ReadPosition(self.settings.tenant_id).to_json()
        return info

    def position_holds(self, stored: ReadPosition, now: ReadPosition) -> str | None:
        """A delta link is one tenant's, and a delta read needs one."""
        if not stored.get("cursor"):
            return "no delta link stored yet"
        if stored.server != now.server:
            return f"another tenant ({now.server}; the watermark is of {stored.server})"
        return None

    def describe_position(self, stored: ReadPosition) -> str:
        return "changes since the last run's delta link"

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        since = since_of(info)
        cursor = since.get("cursor") if since is not None else None
        if cursor:
            try:  # a delta round yields nothing before its last page is read: a fallback never duplicates
                yield from self._changes(cursor)
                return
            except DeltaExpired as exc:
                self.fallback = f"Graph asked for a full read ({exc.status} {exc.code}): the stored delta link " \
                                "can no longer be followed"
                log.warning("%s; reading in full instead", self.fallback)
                self._removed = []
        if self.spec.delta is not None:
            yield from self._delta_round(self.client.pages("v1.0/users/delta", {"$select": self.select}), full=True)
        else:
            path = (f"v1.0/groups/{self.spec.group_id}/transitiveMembers/microsoft.graph.user"
                    if self.spec.group_id else "v1.0/users")
            params = {"$select": self.select, "$top": str(self.spec.page_size)}
            if self.spec.filter:
                params["$filter"] = self.spec.filter
            yield from self._users(self.client.pages(path, params))

    def removed(self, info: SourceInfo, in_scope: set[str]) -> tuple[list[str], int]:
        return [a for a in self._removed if a not in in_scope], len(self._removed)

    def _users(self, pages, changed: bool = False) -> Iterator[SourceRecord]:
        """Users of a listing; with ``changed`` (a delta's changed users), one now excluded (disabled or a guest
        under ``exclude``) has left the scope: it counts as removed, as AD's delta counts an entry changed out
        of scope."""
        progress = Progress(f"read Entra ID users ({self.spec.name})", log)
        for page in pages:
            for user in page["value"]:
                if "@removed" in user:
                    continue
                if self._excluded(user):
                    if changed:
                        self._removed.append(user["id"])
                    continue
                yield self._record(user)
            progress.advance(len(page["value"]))
            self._note_link(page)
        progress.done()

    def _delta_round(self, pages, full: bool) -> Iterator[SourceRecord]:
        """A delta-query round: every user (first round) or the changed ones (later rounds), ``@removed`` noted.

        Graph lists a user once per change, so one user may come several times: the last entry per id is its
        state (a user changed and then deleted is removed; deleted and restored is changed).
        """
        last: dict[str, bool] = {}  # id → removed? (the last entry wins)
        progress = Progress(f"read Entra ID {'users' if full else 'changes'} ({self.spec.name})", log)
        for page in pages:
            for user in page["value"]:
                gone = "@removed" in user
                last.pop(user["id"], None)
                last[user["id"]] = gone
                if full and not gone and not self._excluded(user):
                    yield self._record(user)  # a user listed twice here is settled by ``unique_by``
            progress.advance(len(page["value"]))
            self._note_link(page)
        progress.done()
        self._removed = [i for i, gone in last.items() if gone]
        if not full:  # updated users came with the changed properties only: read them whole, by id
            yield from self._reread([i for i, gone in last.items() if not gone])

    def _reread(self, ids: list[str]) -> Iterator[SourceRecord]:
        """The changed users, whole, by id (15 per request). Graph replicates a change to its replicas over
        time, so an id the delta round named may not be readable yet: ask again after ``reread_waits``; an id
        still missing keeps the delta link where it was, so the next run reads that change again."""
        waits = list(self.settings.reread_waits)
        while ids:
            found: set[str] = set()
            for start in range(0, len(ids), ID_BATCH):
                batch = ",".join(f"'{i}'" for i in ids[start:start + ID_BATCH])
                for record in self._users(self.client.pages(
                        "v1.0/users", {"$select": self.select, "$filter": f"id in ({batch})"}), changed=True):
                    found.add(record.get("id") or "")
                    yield record
            ids = [i for i in ids if i not in found and i not in self._removed]
            if ids and waits:
                wait = waits.pop(0)
                log.warning("Microsoft Graph did not return %d changed user(s) when read by id (not replicated "
                            "yet?); asking again in %g s", len(ids), wait)
                self.client.sleep(wait)
            elif ids:
                shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
                self.warnings.append(
                    f"Microsoft Graph named {len(ids)} changed user(s) it then did not return when read by id "
                    f"(after {len(self.settings.reread_waits)} more tries): {shown}. The delta link was not advanced: the "
                    "next run reads these changes again")
                log.warning("%s", self.warnings[-1])
                self.cursor = None
                return

    def _changes(self, cursor: str) -> Iterator[SourceRecord]:
        yield from self._delta_round(self.client.pages(cursor), full=False)
        log.info("delta: %d user(s) removed since the last run", len(self._removed))

    def _note_link(self, page: dict[str, Any]) -> None:
        if page.get("@odata.deltaLink"):
            self.cursor = page["@odata.deltaLink"]

    def _excluded(self, user: dict[str, Any]) -> bool:
        """Read as absent: disabled under ``disabled_accounts: exclude``, a guest under ``guests: exclude``."""
        return (self.spec.disabled_accounts == "exclude" and user.get("accountEnabled") is False) or \
            (self.spec.guests == "exclude" and is_guest(user.get("userType"), user.get("userPrincipalName")))

    def _record(self, user: dict[str, Any]) -> SourceRecord:
        return SourceRecord(account=user.get("userPrincipalName") or user["id"], attributes=flatten(user))

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """One user: ``/users/{id | userPrincipalName}``, or for a bare name the user whose UPN starts with
        ``name@``; then the rules' scope asked of Graph for that user (``checkMemberGroups`` for the group,
        ``$filter`` with ``id eq``) and the disabled and guest tests."""
        asked = account.strip()
        select = ",".join(dict.fromkeys([*self.select.split(","), "accountEnabled", "userType"]))
        found, before = OneAccount(asked), self.client.http.requests
        if "@" in asked or _OBJECT_ID.match(asked):
            found.found_by = f"GET /users/{asked}"
            try:
                users = [self.client.get(f"v1.0/users/{quote(asked, safe='@')}", {"$select": select})]
            except GraphError as exc:
                if exc.status != 404:
                    raise
                users = []
        else:
            prefix = asked.replace("'", "''")
            found.found_by = f"GET /users?$filter=startswith(userPrincipalName,'{prefix}@')"
            users = self.client.get("v1.0/users", {"$select": select,
                                                   "$filter": f"startswith(userPrincipalName,'{prefix}@')"})["value"]
            if len(users) > 1:
                raise SourceQueryError(f"{asked!r} names {len(users)} users "
                                       f"({', '.join(u.get('userPrincipalName') or u['id'] for u in users)}): "
                                       "give the userPrincipalName or the object id")
        found.entries, found.requests = len(users), self.client.http.requests - before
        if users:
            found.record = self._record(users[0])
            found.checks = self._scope(users[0])
        return found

    def _scope(self, user: dict[str, Any]) -> list[ScopeCheck]:
        checks = []
        if self.spec.group_id:
            member = self.client.post(f"v1.0/users/{user['id']}/checkMemberGroups",
                                      {"groupIds": [self.spec.group_id]})["value"]
            checks.append(ScopeCheck("group", bool(member), f"{'a' if member else 'not a'} member of group "
                                                            f"{self.spec.group_id} (nested groups included)"))
        if self.spec.filter:
            hit = self.client.get("v1.0/users", {"$select": "id",
                                                 "$filter": f"id eq '{user['id']}' and ({self.spec.filter})"})["value"]
            checks.append(ScopeCheck("filter", bool(hit), f"Graph {'returns' if hit else 'does not return'} "
                                                          f"the user for $filter {self.spec.filter}"))
        if self.spec.disabled_accounts != "import":
            off = user.get("accountEnabled") is False
            checks.append(ScopeCheck("disabled accounts", not off or self.spec.disabled_accounts == "skip",
                                     f"accountEnabled {str(not off).lower()}"
                                     + (f" (disabled_accounts: {self.spec.disabled_accounts})" if off else "")))
        if self.spec.guests != "import" and is_guest(user.get("userType"), user.get("userPrincipalName")):
            checks.append(ScopeCheck("guests", self.spec.guests == "skip",
                                     f"a guest account (guests: {self.spec.guests})"))
        return checks

    def close(self) -> None:
        self.client.close()


__all__ = ["EntraSource", "GraphError", "flatten", "graph_properties"]
