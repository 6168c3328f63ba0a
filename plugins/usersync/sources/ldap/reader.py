"""Active Directory / LDAP as a ``Source``: bind, resolve the object path, paged search in partitions; on AD
the disabled flag, group scoping and delta reads (``ad_delta``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from usersync.core.connection import ConnectionFields
from usersync.sources.base import OneAccount, Source
from usersync.sources.errors import SourceQueryError
from usersync.sources.ldap import ad_delta, forest, one_account
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings
from usersync.sources.ldap.partitions import partition_filter
from usersync.sources.ldap.spec import LdapSourceSpec
from usersync.sources.read_state import ReadPosition, SourceInfo, own, since_of
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)


class LdapSource(Source):
    """Active Directory / LDAP as a ``Source``: bind, resolve the object path, paged search."""

    spec: LdapSourceSpec
    empty_hint = ("wrong object path or filter? member_of groups without members? a bind account that may not "
                  "read the users?")

    def __init__(self, spec: LdapSourceSpec, settings: LdapSettings, attributes: list[str]):
        self.spec, self.settings, self.attributes = spec, settings, attributes
        # what the server is asked for: ``dnDomain`` is worked out here, from each entry's DN
        self.server_attributes = [a for a in attributes if a not in forest.computed(attributes)]
        self._directory: LdapDirectory | None = None

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> LdapSource:
        assert isinstance(spec, LdapSourceSpec) and connection is not None
        return cls(spec, LdapSettings.from_connection(connection), attributes)

    def _open(self, info: SourceInfo | None = None) -> LdapDirectory:
        """The bound directory. After ``check``, the domain controller it chose is tried first, so every
        partition reads the same DC; a delta read uses that DC only (its USN watermark is that DC's)."""
        if self._directory is None:
            settings = self.settings
            if info is not None:
                settings = settings.preferring(own(info).get("host"), only=_delta_since(info) is not None)
            self._directory = LdapDirectory.open(settings)
        return self._directory

    def search_filter(self) -> str:
        """The rules' filter, AND not disabled (``exclude``), AND member of the scope groups (nested)."""
        parts = [self.spec.filter]
        disabled = self.spec.disabled_filter()
        if self.spec.disabled_accounts == "exclude" and disabled:
            parts.append(f"(!{disabled})")
        if self.spec.member_of:
            parts.append(ad_delta.member_filter(self.spec.member_of))
        return parts[0] if len(parts) == 1 else f"(&{''.join(parts)})"

    def check(self) -> SourceInfo:
        """Bind, resolve the base, prove the scope groups exist; for delta sources, the DC's state too."""
        directory = self._open()
        base = self.spec.object_path.strip() or ("" if directory.global_catalog else directory.default_users_base())
        if directory.global_catalog:
            self._check_global_catalog(directory)
        warnings = list(directory.skipped)
        if directory.fell_back:
            warnings.append(f"no secure LDAP port could be reached; this run used UNENCRYPTED LDAP ({directory.url}) "
                            "because the connection's security_mode is SecureThenUnsecure (it never falls back after "
                            "a certificate or StartTLS failure)")
        ad_delta.check_groups(directory, self.spec.member_of)
        mine: dict[str, Any] = {"host": directory.host_entry, "base": base, "filter": self.search_filter()}
        info = SourceInfo(url=directory.url, warnings=warnings, where={"base": base, "filter": mine["filter"]},
                          own=mine)
        if directory.global_catalog:
            info["where"]["scope"] = "the whole forest (Global Catalog)" + ("" if base else ", from its root")
        if forest.computed(self.attributes):
            mine["domains"] = forest.domain_names(directory)
        if self.spec.delta is not None:  # read before any search: the position a later delta continues from
            mine["dc"] = dc = ad_delta.dc_state(directory, self.spec.member_of)
            info["position"] = ReadPosition(dc["server"], {"invocation_id": dc["invocation_id"], "usn": dc["usn"],
                                                           "scope_usn": dc["scope_usn"]}).to_json()
        return info

    def position_holds(self, stored: ReadPosition, now: ReadPosition) -> str | None:
        """A USN is one DC's count in one database: the same DC, the same database (invocationId), a USN not
        behind the stored one, and no change to the member_of groups since (AD does not mark the users)."""
        if stored.server != now.server:
            return f"another domain controller ({now.server}; the watermark is of {stored.server})"
        if stored.get("invocation_id") != now.get("invocation_id"):
            return "the domain controller's database changed (new invocationId: restored from backup?)"
        usn = int(stored.get("usn") or 0)
        if int(now.get("usn") or 0) < usn:
            return f"the DC's USN {now.get('usn')} is below the watermark {usn}"
        if int(now.get("scope_usn") or 0) > usn:
            return "membership of a member_of group changed (AD does not mark the users themselves)"
        return None

    def describe_position(self, stored: ReadPosition) -> str:
        return f"entries changed since USN {stored.get('usn')}"

    def _check_global_catalog(self, directory: LdapDirectory) -> None:
        """A Global Catalog read refuses what it cannot do whole: delta (a watermark is one domain's), and
        attributes the GC does not carry (they would read as empty for every user)."""
        if self.spec.delta is not None:
            raise SourceQueryError(f"{directory.url} is a Global Catalog port: delta reads follow one domain's DCs "
                                   "(uSNChanged, deleted objects); remove 'delta', or read each domain through its "
                                   "own DCs (port 636)")
        missing = forest.outside_partial_set(directory, self.server_attributes)
        if missing:
            raise SourceQueryError(
                f"the Global Catalog at {directory.url} does not carry {', '.join(missing)} (not in the forest's "
                "partial attribute set, or not in the schema): every user would read it as empty. Mark it "
                "'Replicate this attribute to the Global Catalog' in the AD schema, or read each domain through "
                "its own DCs (port 636)")

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        return self.partition(info, 0, 1)

    def partition(self, info: SourceInfo, index: int, count: int) -> Iterator[SourceRecord]:
        """One paged search per partition: the rules' filter AND the partition's (see ``partitions``).

        A delta read (``info["read"]``) is small: partition 0 reads every entry changed since the watermark in
        one search, the other partitions read nothing (and open no connection).
        """
        since = _delta_since(info)
        if since is not None:
            if index:
                return
            ldap_filter = ad_delta.changed_since(own(info)["filter"], since)
        else:
            part = partition_filter(self.spec.key_attribute, index, count)
            ldap_filter = f"(&{own(info)['filter']}{part})" if part else own(info)["filter"]
        records = self._open(info).search(own(info)["base"], ldap_filter, self.server_attributes, self.spec.page_size,
                                          self.spec.scope)
        yield from (_with_domain(record, info) for record in records)

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """The entry ``account`` names (key, UPN, objectGUID or DN), found by the server from the naming
        context, and the rules' scope tested on it entry by entry (see ``one_account``)."""
        found = one_account.read_one(self._open(info), self.spec, account, own(info)["base"], self.server_attributes)
        if found.record is not None:
            found.record = _with_domain(found.record, info)
        return found

    def removed(self, info: SourceInfo, in_scope: set[str]) -> tuple[list[str], int]:
        """On a delta read: anchors of the accounts deleted or moved out of scope since the watermark."""
        since = _delta_since(info)
        if since is None:
            return [], 0
        return ad_delta.removed_anchors(self._open(info), in_scope, since, own(info)["dc"]["naming_context"])

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None


def _with_domain(record: SourceRecord, info: SourceInfo) -> SourceRecord:
    """``dnDomain`` (the NetBIOS name of the domain the entry's DN lies in) added when the rules read it."""
    domains = own(info).get("domains")
    if not domains:
        return record
    name = forest.domain_of(record.account, domains)
    return SourceRecord(record.account, {**record.attributes, forest.DN_DOMAIN: [name] if name else []}, record.problem)


def _delta_since(info: SourceInfo) -> int | None:
    """The USN a delta read continues from (None: a full read)."""
    since = since_of(info)
    return int(since.get("usn") or 0) if since is not None else None


