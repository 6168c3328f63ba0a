"""The ``match:`` rules section: how an account no user has yet may be recognised as an existing local user.

Each entry names what to compare and how sure a hit is: ``link`` (the account is linked to the user by the run)
or ``propose`` (a case waits for a person). Comparisons are case-insensitive and ignore surrounding blanks;
``transforms`` (``username`` only) turn the account's mapped username into the form the local users have.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from usersync.core.models import StrictModel
from usersync.rules import transforms

#: what each ``by`` compares: the users-table fields of the account (mapped) and of the user
MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "extension": ("extension",),
    "name": ("first_name", "last_name"),
    "username": ("username",),
}


class MatchRule(StrictModel):
    """One way an account may be recognised as an existing local user."""

    by: Literal["email", "extension", "name", "username"]
    level: Literal["link", "propose"] = "propose"
    transforms: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> MatchRule:
        if self.transforms and self.by != "username":
            raise ValueError("transforms apply to the account's username only (by: username)")
        for spec in self.transforms:
            transforms.parse(spec)
            if spec.split(":")[0] in transforms.BOOL_TRANSFORMS:
                raise ValueError(f"transform {spec!r} gives yes/no; a username needs text")
        return self

    @property
    def fields(self) -> tuple[str, ...]:
        return MATCH_FIELDS[self.by]

    def describe(self) -> str:
        how = f"{self.by} ({' → '.join(self.transforms)})" if self.transforms else self.by
        return f"{how}: {self.level}"
