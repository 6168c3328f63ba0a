"""The ``source`` part of a rules file: where users come from, one spec per kind of source.

Kept apart from ``rules`` (the run policies: schedule, safety, reports, alarms, fields) because each new kind
of source adds here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeltaSpec(_Strict):
    """Delta sync: entries changed since the stored watermark, plus deleted objects; a full read at least
    every ``full_every_days`` (and whenever the DC, its database or the rules changed)."""

    full_every_days: Annotated[int, Field(ge=1, le=365)] = 7


class _SourceBase(_Strict):
    """What every source has: a name, the sync key (account + Domain) and how to treat disabled accounts."""

    name: str
    #: The Domain stored for every user of this source (half of the sync key)...
    domain: str | None = None
    #: ...or the source attribute / column that holds it, per record.
    domain_attribute: str | None = None
    #: The attribute / column holding the account name (the other half of the sync key).
    key_attribute: str
    #: The immutable anchor (objectGUID, CUCM uuid) stored in ``external_id``; it decides identity, so a renamed
    #: account keeps its user. None: no anchor, the sync key alone decides.
    external_id_attribute: str | None = None
    #: An account deleted and re-created under the same name (a new anchor): ``replace`` — the old user goes
    #: (deletion policy) and a new one is inserted — or ``adopt`` — the new account takes over the old user.
    recreated_accounts: Literal["replace", "adopt"] = "replace"
    #: Accounts the source marks disabled/inactive: ``import`` them (map ``enabled`` from the source),
    #: ``exclude`` them (read as absent: the deletion policy then applies to their users) or ``skip`` them
    #: (their users are left exactly as they are — never inserted, updated or removed — while disabled).
    disabled_accounts: Literal["import", "exclude", "skip"] = "import"
    #: Delta sync (Active Directory only): read only what changed since the last successful run.
    delta: DeltaSpec | None = None

    @field_validator("name")
    @classmethod
    def _dag_safe(cls, v: str) -> str:
        if not re.fullmatch(SOURCE_NAME_PATTERN, v):
            raise ValueError(f"{v!r}: 3 to 64 characters, letters, digits, '_', '.' or '-' only (no blanks)")
        return v

    @model_validator(mode="after")
    def _one_domain(self):
        if (self.domain is None) == (self.domain_attribute is None):
            raise ValueError("give exactly one of 'domain' (a constant) or 'domain_attribute'")
        if self.domain is not None and not self.domain.strip():
            raise ValueError("'domain' must not be blank (blank keys mean local users)")
        return self

    @property
    def partition_count(self) -> int:
        """How many partitions ``extract`` reads in parallel; only LDAP sources split their read."""
        return getattr(self, "partitions", 1)

    @property
    def disabled_attribute(self) -> str | None:
        """Where the source marks an account disabled (AD's userAccountControl, CUCM's status)."""
        return {"active_directory": "userAccountControl", "cucm": "status",
                "entra_id": "accountEnabled"}.get(getattr(self, "type", ""))

    def own_attributes(self) -> list[str]:
        """Attributes the source itself needs besides those the field rules read."""
        skip = self.disabled_attribute if self.disabled_accounts == "skip" else None
        return [a for a in (self.key_attribute, self.domain_attribute, self.external_id_attribute, skip) if a]


class LdapSourceSpec(_SourceBase):
    """Active Directory or another LDAP directory."""

    type: Literal["active_directory", "ldap"]
    conn_id: Annotated[str, Field(min_length=1)]
    #: LDAP object path (search base). Blank: the ``CN=Users`` container of the default naming context.
    object_path: str = ""
    filter: str = "(&(objectClass=user)(!(objectClass=computer)))"
    scope: Literal["subtree", "level"] = "subtree"
    key_attribute: str = "sAMAccountName"
    page_size: Annotated[int, Field(ge=1, le=10000)] = 1000
    #: Parallel reads: the directory is read as this many disjoint partitions (by the key's last character),
    #: each a mapped ``extract`` task. 2 suits a 2-core Airflow worker; raise it with more Celery workers.
    partitions: Annotated[int, Field(ge=1, le=36)] = 2
    #: Only members of these groups (DNs), nested groups included (AD's LDAP_MATCHING_RULE_IN_CHAIN).
    member_of: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _ad_anchor(cls, data: Any) -> Any:
        # Active Directory's objectGUID never changes, renames included: the anchor unless the rules say otherwise
        if isinstance(data, dict) and data.get("type") == "active_directory" and "external_id_attribute" not in data:
            data = {**data, "external_id_attribute": "objectGUID"}
        return data

    @field_validator("member_of")
    @classmethod
    def _group_dns(cls, v: list[str]) -> list[str]:
        bad = [dn for dn in v if "=" not in dn or not dn.strip()]
        if bad:
            raise ValueError(f"not group DNs: {', '.join(map(repr, bad))} (e.g. 'CN=UC Users,OU=Groups,DC=corp,DC=example')")
        return [dn.strip() for dn in v]

    @field_validator("filter")
    @classmethod
    def _balanced(cls, v: str) -> str:
        v = v.strip()
        if re.search(r"[\x00-\x1f\x7f]", v):
            raise ValueError(f"control character in the LDAP filter: {v!r}")
        if not (v.startswith("(") and v.endswith(")")) or v.count("(") != v.count(")"):
            raise ValueError(f"not an LDAP filter (unbalanced or missing parentheses): {v!r}")
        return v

    def describe(self) -> str:
        return f"object path `{self.object_path or '(default CN=Users)'}`, filter `{self.filter}`"


class DatabaseSourceSpec(_SourceBase):
    """A SQL database: a table or one read-only SELECT, streamed in chunks."""

    type: Literal["database"]
    conn_id: Annotated[str, Field(min_length=1)]
    table: str | None = None
    query: str | None = None
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = 5000

    @model_validator(mode="after")
    def _table_or_query(self):
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?", self.table):
            raise ValueError(f"'table' must be a plain (optionally schema-qualified) name, not {self.table!r}")
        if self.query is not None:
            q = self.query.strip().rstrip(";").strip()
            if not re.match(r"(?is)^(select|with)\b", q) or ";" in q:
                raise ValueError("'query' must be one read-only SELECT (or WITH … SELECT) statement")
        return self

    def describe(self) -> str:
        return f"table `{self.table}`" if self.table else "a SELECT query"


class CsvSourceSpec(_SourceBase):
    """A CSV file imported on demand (never deletes). The file is chosen when the import is triggered."""

    type: Literal["csv"]
    #: Folder the imported files must be in. Default: $USERSYNC_IMPORTS_DIR, else $USERSYNC_HOME/imports.
    imports_dir: str | None = None

    def describe(self) -> str:
        return f"CSV files under `{self.imports_dir or '$USERSYNC_IMPORTS_DIR'}`"


#: The listUser returnedTags a rules file may read (primaryExtension is its nested pattern).
CUCM_TAGS = (
    "userid", "firstName", "middleName", "lastName", "mailid", "department", "title", "manager",
    "telephoneNumber", "mobileNumber", "homeNumber", "pagerNumber", "directoryUri", "status",
    "primaryExtension", "primaryExtensionPartition", "uuid",
)


class CucmSourceSpec(_SourceBase):
    """Cisco Unified Communications Manager end users, read over AXL (listUser, paged)."""

    type: Literal["cucm"]
    conn_id: Annotated[str, Field(min_length=1)]
    key_attribute: str = "userid"
    external_id_attribute: str | None = "uuid"
    #: listUser searchCriteria on userid (SQL LIKE pattern; CUCM requires a criterion).
    userid_pattern: str = "%"
    page_size: Annotated[int, Field(ge=1, le=5000)] = 1000

    def describe(self) -> str:
        return f"listUser userid LIKE `{self.userid_pattern}`"


class EntraSourceSpec(_SourceBase):
    """Microsoft Entra ID (Azure AD) users, read through Microsoft Graph with an app's client credentials.

    Records carry the Graph properties the rules name (``businessPhones`` as its first number,
    ``extensionAttribute1``…``15`` from ``onPremisesExtensionAttributes``) plus ``upnLocalPart`` and ``upnDomain``,
    the two halves of the userPrincipalName: by default the key and the Domain. ``id`` is the anchor.
    """

    type: Literal["entra_id"]
    conn_id: Annotated[str, Field(min_length=1)]
    key_attribute: str = "upnLocalPart"
    external_id_attribute: str | None = "id"
    #: only the transitive members of this group (object id), nested groups included
    group_id: str | None = None
    #: an OData ``$filter`` on users, e.g. ``accountEnabled eq true`` or ``startswith(department,'UC')``
    filter: str | None = None
    #: users per Graph page (``$top``; Graph allows 1–999)
    page_size: Annotated[int, Field(ge=1, le=999)] = 999

    @model_validator(mode="before")
    @classmethod
    def _upn_domain(cls, data: Any) -> Any:
        # no Domain given: the UPN's domain part, per user
        if isinstance(data, dict) and "domain" not in data and "domain_attribute" not in data:
            data = {**data, "domain_attribute": "upnDomain"}
        return data

    @model_validator(mode="after")
    def _delta_scope(self):
        if self.delta is not None and (self.group_id or self.filter):
            raise ValueError("source.delta: Graph's users delta query cannot be scoped by group_id or filter; "
                             "remove 'delta' or the scope")
        return self

    def describe(self) -> str:
        scope = f"transitive members of group {self.group_id}" if self.group_id else "all users"
        return f"Microsoft Graph, {scope}" + (f", $filter `{self.filter}`" if self.filter else "")


SourceSpec = Annotated[
    LdapSourceSpec | DatabaseSourceSpec | CsvSourceSpec | CucmSourceSpec | EntraSourceSpec, Field(discriminator="type")
]
