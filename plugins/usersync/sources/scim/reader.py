"""A SCIM 2.0 provider as a ``Source``: ``ServiceProviderConfig`` at check, then ``GET /Users`` paged by
``startIndex`` / ``count`` with only the attributes the rules use.

The read ends when ``startIndex`` passes ``totalResults`` — not at the first short page (a provider may return
fewer than asked, e.g. capped at its ``maxResults``). What a provider gets wrong is refused, never read as "the
others left": a page that is empty before ``totalResults`` is reached, a page that repeats users already read
(``startIndex`` ignored), more users after ``totalResults`` said the read was complete.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from usersync.core.connection import ConnectionFields
from usersync.core.progress import Progress
from usersync.sources.base import OneAccount, ScopeCheck, Source, shifted_listing
from usersync.sources.errors import SourceQueryError
from usersync.sources.read_state import SourceInfo, own
from usersync.sources.record import SourceRecord
from usersync.sources.scim import webex
from usersync.sources.scim.client import ScimClient, ScimError, ScimSettings, StaticToken, Tokens, scim_settings
from usersync.sources.scim.paths import AttributePath, attribute, parse
from usersync.sources.scim.spec import ScimSourceSpec
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)


class ScimSource(Source):
    spec: ScimSourceSpec
    unique_by = "id"  # a user changed while the read pages may be listed twice: its last state is kept
    empty_hint = "wrong base URL or filter? a token that may not list users?"

    def __init__(self, spec: ScimSourceSpec, settings: ScimSettings, tokens: Tokens, attributes: list[str]):
        self.spec, self.settings = spec, settings
        self.paths: dict[str, AttributePath] = {a: parse(a) for a in dict.fromkeys(["id", *attributes])}
        self.client = ScimClient(settings, tokens)

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> ScimSource:
        assert isinstance(spec, ScimSourceSpec) and connection is not None
        if webex.is_webex(connection):  # Webex Control Hub: the organisation's path, tokens from a refresh token
            return cls(spec, webex.webex_settings(connection), webex.RefreshingToken.from_connection(connection),
                       attributes)
        if not connection.password:
            raise SourceQueryError(f"connection {connection.conn_id!r} has no bearer token (password)")
        return cls(spec, scim_settings(connection), StaticToken(connection.password), attributes)

    @property
    def requested(self) -> str:
        return ",".join(dict.fromkeys(p.requested for p in self.paths.values()))

    def check(self) -> SourceInfo:
        """The provider's ServiceProviderConfig (paging limit, filter support), then one user to prove the token
        may list users."""
        warnings: list[str] = []
        page, filtering = self.spec.page_size, True
        try:
            config = self.client.get("ServiceProviderConfig")
            limit = (config.get("filter") or {}).get("maxResults")
            filtering = bool((config.get("filter") or {}).get("supported", True))
            if isinstance(limit, int) and 0 < limit < page:
                page = limit
        except ScimError as exc:
            warnings.append(f"the provider has no readable ServiceProviderConfig ({exc.status}): pages of "
                            f"{page} are asked for and its own page size is followed")
        if self.spec.filter and not filtering:
            raise SourceQueryError(f"the SCIM provider at {self.settings.base_url} says it does not support filters "
                                   "(ServiceProviderConfig filter.supported false); remove 'filter' from the rules")
        total = _int(attribute(self.client.get("Users", self._params(start=1, count=1)), "totalResults"), "totalResults")
        log.info("SCIM provider %s: %d user(s)%s, pages of %d", self.settings.base_url, total,
                 f" matching {self.spec.filter!r}" if self.spec.filter else "", page)
        return SourceInfo(url=self.settings.base_url, warnings=warnings, users=total,
                          where={"filter": self.spec.filter} if self.spec.filter else {}, own={"page": page})

    def _params(self, start: int, count: int) -> dict[str, str]:
        params = {"startIndex": str(start), "count": str(count), "attributes": self.requested}
        if self.spec.filter:
            params["filter"] = self.spec.filter
        return params

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        """Every page from ``startIndex`` 1 until ``totalResults`` is passed. A user served again on a later page
        (changed while the read pages) is yielded again: ``unique_by`` keeps its last state. A provider that
        ignores ``startIndex`` answers a later page with the first page itself, and is refused."""
        count = int(own(info).get("page") or self.spec.page_size)
        start, first_page, totals, smallest = 1, None, [], count
        progress = Progress(f"read SCIM users ({self.spec.name})", log, total=info.get("users"))
        while True:
            page = self.client.get("Users", self._params(start, count))
            total = _int(attribute(page, "totalResults"), "totalResults")
            totals.append(total)
            items = _resources(page)
            ids = [attribute(r, "id") for r in items]
            if first_page is None:
                first_page = ids
            elif ids and ids == first_page:
                raise SourceQueryError(f"the SCIM provider at {self.settings.base_url} answered startIndex {start} with "
                                       "its first page again: it ignores startIndex, so the read cannot page; "
                                       "nothing is deleted (raise page_size above the number of users, or fix the "
                                       "provider)")
            smallest = min(smallest, len(items) or smallest)
            if len(totals) > _most_pages(totals[0], smallest):
                raise SourceQueryError(f"the SCIM provider at {self.settings.base_url} served {len(totals)} pages though "
                                       f"it announced {totals[0]} users (pages of {smallest} or more): the read cannot "
                                       "end, so it stops here and nothing is deleted")
            for resource in items:
                yield self._record(resource)
            progress.advance(len(items))
            start += len(items)
            if not items:
                if start <= total:
                    raise SourceQueryError(
                        f"the SCIM provider at {self.settings.base_url} returned no users at startIndex {start} though "
                        f"totalResults says {total}; refusing a partial read (nothing is deleted)")
                break
            if start > total:
                if len(items) >= count and self._more_after(start, count):
                    raise SourceQueryError(
                        f"the SCIM provider at {self.settings.base_url} said totalResults {total} but returned more "
                        f"users after it; its count is wrong, so the read cannot know it is complete (nothing is "
                        "deleted)")
                break
        if len(set(totals)) > 1:
            self.warnings = [*self.warnings, shifted_listing(
                f"totalResults changed from {totals[0]} to {totals[-1]} while the read paged "
                f"({len(totals)} pages)")]
        progress.done()

    def _more_after(self, start: int, count: int) -> bool:
        """A full last page: ask one page more, so a ``totalResults`` that is too low never ends a read early."""
        return bool(_resources(self.client.get("Users", self._params(start, count))))

    def _record(self, resource: dict[str, Any]) -> SourceRecord:
        values = {name: path.resolve(resource) for name, path in self.paths.items()}
        key = values.get(self.spec.key_attribute) or attribute(resource, "userName")
        return SourceRecord(f"SCIM user {key} (id {attribute(resource, 'id')})",
                            {k: v for k, v in values.items() if v is not None})

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """By userName (a filter the provider answers), else by resource id; the rules' filter tested on it by the
        provider (``(<filter>) and id eq "<id>"``)."""
        found = self._by_user_name(account)
        if not found.entries and _RESOURCE_ID.fullmatch(account):
            self._by_id(account, found)
        return self._scoped(found)

    def lookup(self, info: SourceInfo, key: str | None, anchor: str | None) -> OneAccount:
        """By the resource id the users table keeps (one ``GET /Users/{id}``; 404: gone), else by userName."""
        if anchor and _RESOURCE_ID.fullmatch(anchor):
            return self._scoped(self._by_id(anchor, OneAccount(asked=anchor)))
        return self._scoped(self._by_user_name(key or anchor or ""))

    def _by_user_name(self, account: str) -> OneAccount:
        quoted = _quoted(account)
        answer = self.client.get("Users", {"filter": f'userName eq "{quoted}"', "attributes": self.requested})
        found = OneAccount(asked=account, requests=1, found_by=f'filter userName eq "{quoted}"')
        resources = _resources(answer)
        found.entries = len(resources)
        if resources:
            found.record = self._record(resources[0])
        return found

    def _by_id(self, resource_id: str, found: OneAccount) -> OneAccount:
        found.requests += 1
        found.found_by += f"{', then ' if found.found_by else ''}GET /Users/{resource_id}"
        try:
            resource = self.client.get(f"Users/{resource_id}", {"attributes": self.requested})
        except ScimError as exc:
            if exc.status != 404:
                raise
            return found
        if str(attribute(resource, "id")) != resource_id:  # a gateway's answer, a list, another user: not this one
            raise SourceQueryError(f"the SCIM provider answered GET /Users/{resource_id} with "
                                   f"{'a resource of id ' + repr(attribute(resource, 'id')) if attribute(resource, 'id') else 'no resource id'}; "
                                   "refusing to take it for that user")
        found.entries, found.record = 1, self._record(resource)
        return found

    def _scoped(self, found: OneAccount) -> OneAccount:
        """The rules' filter tested by the provider on the one account found."""
        if found.record is None or not self.spec.filter:
            return found
        resource_id = _quoted(str(found.record.get("id")))
        scoped = self.client.get("Users", {"filter": f'({self.spec.filter}) and id eq "{resource_id}"',
                                           "attributes": "id"})
        found.requests += 1
        passed = bool(_resources(scoped))
        found.checks.append(ScopeCheck(f"filter {self.spec.filter}", passed,
                                       "the provider returns it with the filter" if passed else
                                       "the provider does not return it with the filter"))
        return found

    def close(self) -> None:
        self.client.close()


#: what a resource id may be in a URL path: no slash, no dot segment (``.``/``..`` would read another resource)
_RESOURCE_ID = re.compile(r"(?![.]+$)[\w.:-]+")


def _quoted(value: str) -> str:
    """A value inside a SCIM filter's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _resources(page: dict[str, Any]) -> list[dict[str, Any]]:
    """A list answer's ``Resources`` (attribute names are case-insensitive, RFC 7643 §2.1)."""
    return [r for r in attribute(page, "Resources") or [] if isinstance(r, dict)]


def _most_pages(total: int, count: int) -> int:
    """How many pages a read may take: every user once in pages of ``count`` (the smallest page served), twice
    over (users served again) and a few more; past it the provider is feeding a read that would never end."""
    return 2 * (-(-total // max(count, 1))) + 10


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SourceQueryError(f"the SCIM provider's list answer has no number in {name} ({value!r})") from None
