"""The change set: what a run will write, as typed changes (``plan_tables`` stores them as Arrow tables).

Shaped like octoDNS' plan: the diff produces it, the safety checks read it, apply executes it. Updates carry
only the changed columns with old → new, so the report can say exactly what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from usersync.rules.fields import NUMBER_FIELDS


def match_key(ad_username: str, domain: str) -> tuple[str, str]:
    """The case-insensitive form used to match source accounts to users."""
    return (ad_username.strip().casefold(), domain.strip().casefold())


#: between AD username and Domain in a sync key claim (``k:``); sorts below every printable character, so
#: "a<SEP>b" orders like the tuple ("a", "b")
KEY_SEP = "\x1f"


def claim_label(claim: str) -> str:
    """A uniqueness claim (``u:`` username, ``k:`` sync key, ``n:`` number) as an admin reads it."""
    if claim.startswith("k:"):
        account, _sep, domain = claim[2:].partition(KEY_SEP)
        return f"AD username {domain}\\{account}"
    return f"{'username' if claim.startswith('u:') else 'number'} {claim[2:]}"


def row_claims(row: Mapping[str, Any]) -> set[str]:
    """A row's claims: ``u:`` username, ``k:`` sync key, ``n:`` each number (as ``plan.claims`` forms them)."""
    claims = set()
    if row.get("username"):
        claims.add("u:" + str(row["username"]).lower())
    ad, domain = row.get("ad_username"), row.get("domain")
    if ad and domain:
        claims.add("k:" + ad.strip().lower() + KEY_SEP + domain.strip().lower())
    claims.update("n:" + row[c] for c in NUMBER_FIELDS if row.get(c))
    return claims


@dataclass(frozen=True)
class Insert:
    row: dict[str, Any]  # every writable column of the new user

    @property
    def label(self) -> str:
        return f"{self.row.get('domain')}\\{self.row.get('ad_username')}"


@dataclass(frozen=True)
class Update:
    id: int
    username: str
    changes: dict[str, tuple[Any, Any]]  # column → (old, new)

    @property
    def label(self) -> str:
        return self.username


@dataclass(frozen=True)
class _Leaver:
    """A user whose account is no longer in the source."""

    id: int
    username: str
    ad_username: str
    domain: str

    @property
    def label(self) -> str:
        return self.username


@dataclass(frozen=True)
class Delete(_Leaver):
    """Deletion policy 'delete' (the default): the user is removed."""


@dataclass(frozen=True)
class Disable(_Leaver):
    """Deletion policy 'disable': the user stays, flagged disabled, until the account comes back."""


@dataclass(frozen=True)
class Leaving:
    """A step in a leaver's life the report lists: pending deletion, returned, held (protected) or detached.

    ``left_at``: when the account was first found gone (UTC); ``until``: the run after which a pending user is
    deleted; ``days``: how long it was gone (returns); ``reason``: why a user is held or was detached."""

    id: int
    username: str
    ad_username: str | None
    domain: str | None
    left_at: datetime | None = None
    until: datetime | None = None
    days: int | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        return f"{self.username} ({self.domain}\\{self.ad_username})" if self.ad_username else self.username


#: the lists of leavers' steps a change set carries, as (ChangeSet attribute, count name)
LIFECYCLE = (("pending", "pending"), ("returns", "returned"), ("holds", "protected"), ("detaches", "detached"))


class SkipCode:
    """Why an account was skipped, as a code (the reason says it in words): what a per-user log, a case or an
    explanation keys on — never the wording."""

    BAD_DATA = "bad_data"  # the record cannot be mapped (a required value missing, a transform failed)
    DUPLICATE_KEY = "duplicate_key"  # two accounts of the source have the same sync key
    DUPLICATE_ANCHOR = "duplicate_anchor"  # ... or the same anchor
    OWNED_ELSEWHERE = "owned_by_other_source"  # its user belongs to another source
    USERNAME_TAKEN = "username_taken"  # a claim refused: another user holds the username
    KEY_TAKEN = "key_taken"  # ... the sync key (AD username + Domain)
    NUMBER_TAKEN = "number_taken"  # ... a unique number
    RECREATED_KEPT = "recreated_kept"  # re-created in the source while the old account's user stays
    REJECTED_MATCH = "rejected_match"  # an admin rejected the proposed match and the account cannot be a new user
    #: the codes of claims refused because another user holds the value
    CLAIMS = frozenset({USERNAME_TAKEN, KEY_TAKEN, NUMBER_TAKEN, OWNED_ELSEWHERE, RECREATED_KEPT})


@dataclass(frozen=True)
class Skipped:
    account: str  # how the admin finds it in the source (DN, row id, uuid)
    reason: str
    #: the sync key when the record had one: a skipped account still exists, so its user is never deleted
    ad_username: str | None = None
    domain: str | None = None
    external_id: str | None = None  # its anchor, when read: a renamed account skipped for bad data is kept too
    code: str = SkipCode.BAD_DATA


@dataclass
class ChangeSet:
    source: str
    inserts: list[Insert] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    disables: list[Disable] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: leavers disabled and waiting for the end of the grace period (their deletion is not this run's)
    pending: list[Leaving] = field(default_factory=list)
    #: accounts back in the source while their user was disabled by sync: re-enabled (they are in updates too)
    returns: list[Leaving] = field(default_factory=list)
    #: protected users (``protect:``, ``sync_protected``) a removal or update was held back for
    holds: list[Leaving] = field(default_factory=list)
    #: users turned into local users (AD username, Domain and owner cleared)
    detaches: list[Leaving] = field(default_factory=list)
    read: int = 0  # source records read
    unchanged: int = 0  # matched users that need no write
    owned: int = 0  # users this source owned before the run (the base of the mass-delete percentage)
    kept: int = 0  # users that left the source but stay (deletion policy 'keep')
    held: int = 0  # users of accounts disabled in the source, left as they are (disabled_accounts 'skip')
    #: lines the report shows besides the changes: why an account was re-created, how the source was read
    notes: list[str] = field(default_factory=list)
    #: set on a preview of a large saved plan (the report's): the full length of each change list
    totals: dict[str, int] = field(default_factory=dict, compare=False)

    def total(self, kind: str) -> int:
        """How many entries of ``kind`` ('inserts', 'updates', 'deletes', 'disables', 'detaches', …) the whole
        plan holds."""
        return self.totals.get(kind, len(getattr(self, kind)))

    @property
    def writes(self) -> int:
        return sum(self.total(k) for k in ("inserts", "updates", "deletes", "disables", "detaches"))

    @property
    def removals(self) -> int:
        """Users losing access this run: deleted or disabled (what the mass-delete guard counts)."""
        return self.total("deletes") + self.total("disables")

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "inserted": self.total("inserts"),
            "updated": self.total("updates"),
            "deleted": self.total("deletes"),
            "disabled": self.total("disables"),
            "unchanged": self.unchanged,
            "skipped": len(self.skipped),
            **{count: self.total(kind) for kind, count in LIFECYCLE if self.total(kind)},  # when any
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists); ``from_json`` restores it exactly."""
        return {
            "source": self.source,
            "read": self.read,
            "unchanged": self.unchanged,
            "owned": self.owned,
            "kept": self.kept,
            "held": self.held,
            "notes": list(self.notes),
            "inserts": [c.row for c in self.inserts],
            "updates": [
                {"id": c.id, "username": c.username, "changes": {k: [o, n] for k, (o, n) in c.changes.items()}}
                for c in self.updates
            ],
            "deletes": [asdict(c) for c in self.deletes],
            "disables": [asdict(c) for c in self.disables],
            "skipped": [asdict(c) for c in self.skipped],
            **{kind: [{**asdict(c), "left_at": _iso(c.left_at), "until": _iso(c.until)} for c in getattr(self, kind)]
               for kind, _count in LIFECYCLE},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeSet:
        return cls(
            source=data["source"],
            read=data.get("read", 0),
            unchanged=data.get("unchanged", 0),
            owned=data.get("owned", 0),
            kept=data.get("kept", 0),
            held=data.get("held", 0),
            notes=list(data.get("notes", [])),
            inserts=[Insert(dict(r)) for r in data.get("inserts", [])],
            updates=[
                Update(u["id"], u["username"], {k: (o, n) for k, (o, n) in u["changes"].items()})
                for u in data.get("updates", [])
            ],
            deletes=[Delete(**d) for d in data.get("deletes", [])],
            disables=[Disable(**d) for d in data.get("disables", [])],
            skipped=[Skipped(**s) for s in data.get("skipped", [])],
            **_leavings_of(data),
        )


def _leavings_of(data: dict[str, Any]) -> dict[str, Any]:
    return {kind: [Leaving(**{**d, "left_at": _time(d.get("left_at")), "until": _time(d.get("until"))})
                   for d in data.get(kind, [])] for kind, _count in LIFECYCLE}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
