"""``source.type: active_directory`` and ``ldap``: a directory read over LDAP(S), paged, in partitions."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from usersync.sources.spec import ConnectedSpec


class LdapSourceSpec(ConnectedSpec):
    """An LDAP directory (OpenLDAP, 389 DS, …): no disabled flag, no anchor, read whole."""

    account_forms: ClassVar[str] = "the key attribute's value or the entry's DN"
    example_source: ClassVar[dict[str, Any]] = {
        "object_path": "ou=people,dc=example,dc=org", "filter": "(objectClass=inetOrgPerson)", "key_attribute": "uid",
        "domain": "EXAMPLE", "partitions": 1}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "uid", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "givenName"},
        "last_name": {"policy": "import", "attribute": "sn"},
        "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
        "extension": {"policy": "import", "attribute": "telephoneNumber", "transforms": ["digits"]},
        "mobile": {"policy": "import", "attribute": "mobile"},
        "enabled": {"policy": "on_insert", "value": True}}

    type: Literal["ldap"]
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

    @field_validator("member_of")
    @classmethod
    def _group_dns(cls, v: list[str]) -> list[str]:
        bad = [dn for dn in v if "=" not in dn or not dn.strip()]
        if bad:
            raise ValueError(f"not group DNs: {', '.join(map(repr, bad))} "
                             "(e.g. 'CN=UC Users,OU=Groups,DC=corp,DC=example')")
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

    @property
    def partition_count(self) -> int:
        return self.partitions

    #: What the server adds to the filter to leave disabled accounts out (``disabled_accounts: exclude``).
    def disabled_filter(self) -> str | None:
        return None

    def describe(self) -> str:
        return f"object path `{self.object_path or '(default CN=Users)'}`, filter `{self.filter}`"


class ActiveDirectorySourceSpec(LdapSourceSpec):
    """Active Directory: userAccountControl marks disabled accounts, objectGUID anchors (renames keep their
    user), uSNChanged allows delta reads."""

    disabled_attribute: ClassVar[str | None] = "userAccountControl"
    delta_anchor: ClassVar[str | None] = "objectGUID"

    account_forms: ClassVar[str] = "the sAMAccountName, the userPrincipalName, the objectGUID or the DN"
    example_source: ClassVar[dict[str, Any]] = {
        "object_path": "OU=Staff,DC=corp,DC=example", "filter": "(&(objectCategory=person)(objectClass=user))",
        "key_attribute": "sAMAccountName", "domain": "CORP"}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "sAMAccountName", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "givenName"},
        "last_name": {"policy": "import", "attribute": "sn"},
        "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
        "department": {"policy": "import", "attribute": "department"},
        "extension": {"policy": "prefix", "prefix": "", "attribute": "ipPhone", "transforms": ["digits"]},
        "mobile": {"policy": "import", "attribute": "mobile"},
        "language": {"policy": "on_insert", "value": "en"},
        "enabled": {"policy": "import", "attribute": "userAccountControl", "transforms": ["ad_enabled"]}}

    type: Literal["active_directory"]  # type: ignore[assignment]  # AD is the same reader with more to offer
    #: objectGUID never changes, renames included: the anchor unless the rules say otherwise
    external_id_attribute: str | None = "objectGUID"

    def is_disabled(self, value: str) -> bool:
        return bool(int(value) & 2)  # ACCOUNTDISABLE; int() refuses a value that is not a number

    def disabled_filter(self) -> str | None:
        return "(userAccountControl:1.2.840.113556.1.4.803:=2)"
