"""``source.type: cucm``: Cisco Unified Communications Manager end users, read over AXL."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

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
