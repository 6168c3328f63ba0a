"""What every ``source`` section of a rules file has, and what each source type declares about itself.

A source type's spec (``usersync/sources/<type>/spec.py``) subclasses ``SourceSpecBase``: its fields are the
options an admin may write, and its class attributes tell the shared code what it would otherwise have to ask
with ``if type == …`` — where accounts are marked disabled, which anchor delta reads need, whether the source is
imported on demand, how many partitions it reads in parallel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from usersync.core.models import StrictModel

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"


class DeltaSpec(StrictModel):
    """Delta sync: entries changed since the stored watermark, plus deleted objects; a full read at least
    every ``full_every_days`` (and whenever the DC, its database or the rules changed)."""

    full_every_days: Annotated[int, Field(ge=1, le=365)] = 7


class SourceSpecBase(StrictModel):
    """What every source has: a name, the sync key (account + Domain) and how to treat disabled accounts."""

    #: The attribute where the source marks an account disabled (``is_disabled`` reads it); None: it has none,
    #: so ``disabled_accounts`` other than ``import`` is refused.
    disabled_attribute: ClassVar[str | None] = None
    #: The anchor a delta read matches deleted objects by; None: the type has no delta reads.
    delta_anchor: ClassVar[str | None] = None
    #: Imported on demand from a file chosen at trigger time: never scheduled, never removes users.
    on_demand: ClassVar[bool] = False
    #: Why the type cannot read only what changed (said when a rules file asks for ``delta``)
    no_delta: ClassVar[str] = "the source offers no change feed"
    #: How the type lists its accounts when that listing can shift while a read pages through it (paging by
    #: offset: an account deleted before the current page moves every later one back a place, so one is never
    #: returned); None: it cannot (a server-side cursor, one query, a file). A read of such a type removes a
    #: user only after the source confirms, account by account (``Source.lookup``), that its account is gone.
    listing_shifts: ClassVar[str | None] = None
    #: What an admin may type to name one account (the ``account`` trigger parameter)
    account_forms: ClassVar[str] = "its key"
    #: what a new source of this type starts with (the console's new-source wizard, the editor's Default): source
    #: options beyond the model's defaults, and the field rules a typical source of this type needs
    example_source: ClassVar[dict[str, Any]] = {}
    example_fields: ClassVar[dict[str, Any]] = {}

    #: ``source.type``: each spec narrows it to its own names (the union's discriminator)
    type: str
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
    #: Delta sync (types with a ``delta_anchor``): read only what changed since the last successful run.
    delta: DeltaSpec | None = None

    @classmethod
    def type_names(cls) -> tuple[str, ...]:
        """The ``source.type`` values this spec answers to (its ``type`` field's literals)."""
        return get_args(cls.model_fields["type"].annotation)

    @field_validator("name")
    @classmethod
    def _dag_safe(cls, v: str) -> str:
        if not re.fullmatch(SOURCE_NAME_PATTERN, v):
            raise ValueError(f"{v!r}: 3 to 64 characters, letters, digits, '_', '.' or '-' only (no blanks)")
        return v

    @field_validator("disabled_accounts")
    @classmethod
    def _marks_disabled(cls, v: str) -> str:
        if v != "import" and cls.disabled_attribute is None:
            marking = types_with(lambda spec: spec.disabled_attribute is not None)
            raise ValueError(f"'{v}' is for {marking} sources (they mark accounts disabled); for other sources leave "
                             "disabled accounts out with the filter / query")
        return v

    @field_validator("delta")
    @classmethod
    def _delta_supported(cls, v: DeltaSpec | None, info: ValidationInfo) -> DeltaSpec | None:
        if v is None:
            return v
        if cls.delta_anchor is None:
            raise ValueError(f"delta sync is for {types_with(lambda spec: spec.delta_anchor is not None)} sources "
                             f"only (they read only what changed); {cls.type_names()[0]} sources are read whole "
                             f"({cls.no_delta}): remove 'delta'")
        if (info.data.get("external_id_attribute") or "").lower() != cls.delta_anchor.lower():
            raise ValueError(f"needs external_id_attribute {cls.delta_anchor} "
                             "(deleted objects are matched to users by their anchor)")
        return v

    @model_validator(mode="after")
    def _one_domain(self) -> SourceSpecBase:
        if (self.domain is None) == (self.domain_attribute is None):
            raise ValueError("give exactly one of 'domain' (a constant) or 'domain_attribute'")
        if self.domain is not None and not self.domain.strip():
            raise ValueError("'domain' must not be blank (blank keys mean local users)")
        return self

    @property
    def partition_count(self) -> int:
        """How many partitions ``extract`` reads in parallel; types that cannot split their read have one."""
        return 1

    def connection_id(self) -> str | None:
        """The Airflow connection this source is reached through; None for sources read from a file."""
        return None

    @classmethod
    def rotated_secrets(cls, conn_type: str | None, extra: Mapping[str, Any]) -> tuple[str, ...]:
        """The connection extras this type's server may renew during a run (e.g. a refresh token it rotates):
        the adapter keeps what a run received for the next run, and gives it back before the connection's own
        unless an admin has entered a new one since. None by default."""
        return ()

    def is_disabled(self, value: str) -> bool:
        """Whether ``disabled_attribute``'s value marks the account disabled; ValueError for a value that
        cannot be read."""
        return False

    def held(self, get: Callable[[str], str | None]) -> str | None:
        """Why a record's user must be left exactly as it is (like a disabled account under ``skip``), read
        through ``get(attribute)``; None: map it. The default holds nobody."""
        return None

    def check_attributes(self, attributes: list[str]) -> None:
        """Refuse (ValueError) attributes this source can never return; the default: any name may exist."""

    def write_back_problem(self, attribute: str) -> str | None:
        """Why ``attribute`` cannot be written back to this source; None: it can (the default: any name)."""
        return None

    def own_attributes(self) -> list[str]:
        """Attributes the source itself needs besides those the field rules read."""
        skip = self.disabled_attribute if self.disabled_accounts == "skip" else None
        return [a for a in (self.key_attribute, self.domain_attribute, self.external_id_attribute, skip) if a]

    def describe(self) -> str:
        """One line for the DAG's page: what this source reads."""
        raise NotImplementedError


class ConnectedSpec(SourceSpecBase):
    """A source reached through an Airflow connection (host, credentials, TLS options); secrets stay there."""

    conn_id: Annotated[str, Field(min_length=1)]

    def connection_id(self) -> str | None:
        return self.conn_id


def with_default(data: Any, key: str, value: Any) -> Any:
    """``data`` (a rules section before validation) with ``key`` set to ``value`` unless the admin set it."""
    if isinstance(data, dict) and key not in data:
        return {**data, key: value}
    return data


def types_with(capability: Callable[[type[SourceSpecBase]], bool]) -> str:
    """The source types whose spec declares ``capability``, as a rules file names them ("a, b and c"): read
    from the specs themselves, so a new type's declarations show in every message without editing it."""
    found: list[str] = []
    waiting = list(SourceSpecBase.__subclasses__())
    while waiting:
        spec = waiting.pop()
        waiting.extend(spec.__subclasses__())
        if "type" in spec.model_fields and capability(spec):
            found.extend(n for n in spec.type_names() if isinstance(n, str))
    return listed(sorted(set(found)))


def listed(names: list[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}" if names else "no"
