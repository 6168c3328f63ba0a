"""``source.type: cucm``: Cisco Unified Communications Manager end users, read over AXL."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from usersync.sources.spec import ConnectedSpec

#: The listUser returnedTags a rules file may read (primaryExtension is its nested pattern).
CUCM_TAGS = (
    "userid", "firstName", "middleName", "lastName", "mailid", "department", "title", "manager",
    "telephoneNumber", "mobileNumber", "homeNumber", "pagerNumber", "directoryUri", "status",
    "primaryExtension", "primaryExtensionPartition", "uuid",
)


class CucmSourceSpec(ConnectedSpec):
    """Cisco Unified Communications Manager end users, read over AXL (listUser, paged)."""

    disabled_attribute: ClassVar[str | None] = "status"

    account_forms: ClassVar[str] = "the CUCM userid"
    example_source: ClassVar[dict[str, Any]] = {"domain": "EXAMPLE"}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "userid", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "firstName"},
        "last_name": {"policy": "import", "attribute": "lastName"},
        "email": {"policy": "import", "attribute": "mailid", "transforms": ["lower"]},
        "department": {"policy": "import", "attribute": "department"},
        "extension": {"policy": "import", "attribute": "primaryExtension"},
        "mobile": {"policy": "import", "attribute": "mobileNumber"},
        "language": {"policy": "on_insert", "value": "en"},
        "enabled": {"policy": "import", "attribute": "status", "transforms": ["cucm_active"]}}
    listing_shifts: ClassVar[str | None] = "AXL listUser pages by offset (skip / first)"
    type: Literal["cucm"]
    key_attribute: str = "userid"
    external_id_attribute: str | None = "uuid"
    #: listUser searchCriteria on userid (SQL LIKE pattern; CUCM requires a criterion).
    userid_pattern: str = "%"
    page_size: Annotated[int, Field(ge=1, le=5000)] = 1000

    def is_disabled(self, value: str) -> bool:
        return value == "2"  # CUCM's status: 1 active, 2 inactive

    def check_attributes(self, attributes: list[str]) -> None:
        unknown = [a for a in attributes if a not in CUCM_TAGS]
        if unknown:
            raise ValueError(f"source attributes not returned by CUCM listUser: {', '.join(unknown)} "
                             f"(known: {', '.join(CUCM_TAGS)})")

    def describe(self) -> str:
        return f"listUser userid LIKE `{self.userid_pattern}`"
