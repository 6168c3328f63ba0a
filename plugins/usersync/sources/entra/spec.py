"""``source.type: entra_id``: Microsoft Entra ID users, read through Microsoft Graph."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from usersync.sources.spec import ConnectedSpec, with_default


class EntraSourceSpec(ConnectedSpec):
    """Microsoft Entra ID (Azure AD) users, read through Microsoft Graph with an app's client credentials.

    Records carry the Graph properties the rules name (``businessPhones`` as its first number,
    ``extensionAttribute1``…``15`` from ``onPremisesExtensionAttributes``) plus ``upnLocalPart`` and ``upnDomain``,
    the two halves of the userPrincipalName: by default the key and the Domain. ``id`` is the anchor.
    """

    disabled_attribute: ClassVar[str | None] = "accountEnabled"
    delta_anchor: ClassVar[str | None] = "id"

    type: Literal["entra_id"]
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
        if isinstance(data, dict) and "domain" not in data:
            return with_default(data, "domain_attribute", "upnDomain")
        return data

    @model_validator(mode="after")
    def _delta_scope(self) -> EntraSourceSpec:
        if self.delta is not None and (self.group_id or self.filter):
            raise ValueError("source.delta: Graph's users delta query cannot be scoped by group_id or filter; "
                             "remove 'delta' or the scope")
        return self

    def is_disabled(self, value: str) -> bool:
        return value.strip().lower() == "false"  # accountEnabled

    def describe(self) -> str:
        scope = f"transitive members of group {self.group_id}" if self.group_id else "all users"
        return f"Microsoft Graph, {scope}" + (f", $filter `{self.filter}`" if self.filter else "")
