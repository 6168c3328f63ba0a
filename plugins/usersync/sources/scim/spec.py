"""``source.type: scim``: users of any SCIM 2.0 service provider, read with ``GET /Users`` in pages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from usersync.sources.scim.paths import PathError, parse
from usersync.sources.spec import ConnectedSpec

WEBEX_CONN_TYPE = "usersync_webex"
#: the extra Webex renews (a run's new refresh token is kept for the next run)
REFRESH_TOKEN = "refresh_token"


def is_webex_connection(conn_type: str | None, extra: Mapping[str, Any]) -> bool:
    """A Webex Control Hub connection: the ``usersync_webex`` type, or any SCIM connection naming a Webex
    organisation (``org_id``)."""
    return (conn_type or "").lower() == WEBEX_CONN_TYPE or "org_id" in extra


class ScimSourceSpec(ConnectedSpec):
    """A SCIM 2.0 provider (RFC 7643 / 7644): attributes are SCIM paths (``userName``, ``name.givenName``,
    ``emails[type eq "work"].value``, ``urn:…:enterprise:2.0:User:department``), the anchor is the resource ``id``,
    ``active: false`` marks disabled accounts. SCIM has no change feed: every run reads the users in full, asking
    only for the attributes the rules use, in pages as large as the provider allows."""

    disabled_attribute: ClassVar[str | None] = "active"
    account_forms: ClassVar[str] = "the userName or the resource id"
    example_source: ClassVar[dict[str, Any]] = {"domain": "EXAMPLE"}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "userName", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "name.givenName"},
        "last_name": {"policy": "import", "attribute": "name.familyName"},
        "email": {"policy": "import", "attribute": 'emails[type eq "work"].value', "transforms": ["lower"]},
        "department": {"policy": "import", "attribute":
                       "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
        "extension": {"policy": "import", "attribute": 'phoneNumbers[type eq "work"].value'},
        "mobile": {"policy": "import", "attribute": 'phoneNumbers[type eq "mobile"].value'},
        "language": {"policy": "on_insert", "value": "en"},
        "enabled": {"policy": "import", "attribute": "active", "transforms": ["flag"]}}
    listing_shifts: ClassVar[str | None] = "GET /Users pages by offset (startIndex)"
    no_delta: ClassVar[str] = "SCIM 2.0 defines no change feed; each run reads only the attributes the rules use"

    type: Literal["scim"]
    key_attribute: str = "userName"
    external_id_attribute: str | None = "id"
    #: a SCIM filter the provider applies (RFC 7644 §3.4.2.2), e.g. ``active eq true`` or ``userType eq "Employee"``
    filter: str | None = None
    #: users per page (``count``); the provider's ``maxResults`` (ServiceProviderConfig) caps it
    page_size: Annotated[int, Field(ge=1, le=10000)] = 1000

    @classmethod
    def rotated_secrets(cls, conn_type: str | None, extra: Mapping[str, Any]) -> tuple[str, ...]:
        """Webex rotates the refresh token it renews access tokens from."""
        return (REFRESH_TOKEN,) if is_webex_connection(conn_type, extra) else ()

    @field_validator("filter")
    @classmethod
    def _filter_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        problems = []
        if not v:
            problems.append("it is empty (leave 'filter' out to read every user)")
        if re.search(r"[\x00-\x1f\x7f]", v):
            problems.append("it holds a control character")
        if v.count('"') % 2:
            problems.append("a string is not closed (double quotes)")
        if re.sub(r'"(?:[^"\\]|\\.)*"', "", v).count("(") != re.sub(r'"(?:[^"\\]|\\.)*"', "", v).count(")"):
            problems.append("parentheses do not pair up")
        if not re.search(r"\s(eq|ne|co|sw|ew|gt|ge|lt|le)\s|\spr\b", re.sub(r'"(?:[^"\\]|\\.)*"', '""', v), re.I):
            problems.append("it has no comparison (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")
        if problems:
            raise ValueError(f"not a SCIM filter: {v!r}: {'; '.join(problems)} (e.g. active eq true, "
                             'userType eq "Employee")')
        return v

    def check_attributes(self, attributes: list[str]) -> None:
        problems = []
        for attribute in attributes:
            try:
                parse(attribute)
            except PathError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    def is_disabled(self, value: str) -> bool:
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(value)
        return value.strip().lower() == "false"  # active

    def describe(self) -> str:
        return "SCIM 2.0 /Users" + (f", filter `{self.filter}`" if self.filter else "")
