"""``source.type: entra_id``: Microsoft Entra ID users, read through Microsoft Graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from usersync.sources.spec import ConnectedSpec, with_default


def is_guest(user_type: str | None, upn: str | None) -> bool:
    """A B2B guest: Graph's ``userType`` says so, or the UPN has the ``#EXT#`` mark of an invited account."""
    return (user_type or "").lower() == "guest" or "#ext#" in (upn or "").lower()


#: user properties an app may write through Graph that suit a number: a text each (businessPhones as its one
#: number), the extension attributes through onPremisesExtensionAttributes (cloud-only users)
WRITABLE = ("businessPhones", "mobilePhone", "faxNumber", "officeLocation", "employeeId",
            *(f"extensionAttribute{n}" for n in range(1, 16)))


class EntraSourceSpec(ConnectedSpec):
    """Microsoft Entra ID (Azure AD) users, read through Microsoft Graph with an app's client credentials.

    Records carry the Graph properties the rules name (``businessPhones`` as its first number,
    ``extensionAttribute1``…``15`` from ``onPremisesExtensionAttributes``) plus ``upnLocalPart`` and ``upnDomain``,
    the two halves of the userPrincipalName: by default the key and the Domain. ``id`` is the anchor.
    """

    disabled_attribute: ClassVar[str | None] = "accountEnabled"
    delta_anchor: ClassVar[str | None] = "id"

    account_forms: ClassVar[str] = "the userPrincipalName, the object id, or the UPN's name part"
    example_source: ClassVar[dict[str, Any]] = {}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "upnLocalPart", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "givenName"},
        "last_name": {"policy": "import", "attribute": "surname"},
        "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
        "department": {"policy": "import", "attribute": "department"},
        "extension": {"policy": "import", "attribute": "extensionAttribute1"},
        "mobile": {"policy": "import", "attribute": "mobilePhone"},
        "language": {"policy": "on_insert", "value": "en"},
        "enabled": {"policy": "import", "attribute": "accountEnabled", "transforms": ["flag"]}}
    type: Literal["entra_id"]
    key_attribute: str = "upnLocalPart"
    external_id_attribute: str | None = "id"
    #: only the transitive members of this group (object id), nested groups included
    group_id: str | None = None
    #: an OData ``$filter`` on users, e.g. ``accountEnabled eq true`` or ``startswith(department,'UC')``
    filter: str | None = None
    #: users per Graph page (``$top``; Graph allows 1–999). Not sent with ``delta``: Graph ignores ``$top`` on
    #: ``/users/delta`` and chooses its own page size there.
    page_size: Annotated[int, Field(ge=1, le=999)] = 999
    #: Guest (B2B) accounts — ``userType`` Guest, or ``#EXT#`` in the userPrincipalName: ``import`` them like
    #: members, ``exclude`` them (read as absent: the deletion policy applies to their users) or ``skip`` them
    #: (their users are left exactly as they are). Decided on our side, so it works with ``delta`` too.
    guests: Literal["import", "exclude", "skip"] = "import"

    @model_validator(mode="before")
    @classmethod
    def _upn_domain(cls, data: Any) -> Any:
        # no Domain given: the UPN's domain part, per user
        if isinstance(data, dict) and "domain" not in data:
            return with_default(data, "domain_attribute", "upnDomain")
        return data

    @model_validator(mode="after")
    def _delta_scope(self) -> EntraSourceSpec:
        if self.delta is not None and (self.group_id or self.filter):
            raise ValueError("source.delta: Graph's users delta query cannot be scoped by group_id or filter; "
                             "remove 'delta' or the scope")
        return self

    def own_attributes(self) -> list[str]:
        # the id always: Graph may list one user twice in a read, and the last state per id is kept
        guests = ["userType", "userPrincipalName"] if self.guests != "import" else []
        return [*super().own_attributes(), *(a for a in ["id", *guests] if a != self.external_id_attribute)]

    def held(self, get: Callable[[str], str | None]) -> str | None:
        if self.guests == "skip" and is_guest(get("userType"), get("userPrincipalName")):
            return "a guest account (guests: skip)"
        return None

    def is_disabled(self, value: str) -> bool:
        return value.strip().lower() == "false"  # accountEnabled

    def write_back_problem(self, attribute: str) -> str | None:
        if attribute not in WRITABLE:
            return (f"Graph does not let an app write {attribute!r} here; write-back to Entra ID takes "
                    f"{', '.join(WRITABLE[:5])} or extensionAttribute1…15")
        return None

    def describe(self) -> str:
        scope = f"transitive members of group {self.group_id}" if self.group_id else "all users"
        return f"Microsoft Graph, {scope}" + (f", $filter `{self.filter}`" if self.filter else "")
