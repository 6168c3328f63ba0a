"""Cases a run finds and the decisions it applies, as the plan carries them (``store.cases`` keeps them).

A case is keyed so it is the same case from run to run, whatever is renamed: by the claimant account's anchor
when the source has one, else by its AD username + Domain (case-insensitive); a held number adds the field.
Decisions come back to the diff as ``Decision`` per key; the plan lists the ones it applied (``DECIDED_SCHEMA``),
each with the version it read, so a decision changed during the run is applied by the next run, never half.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from usersync.plan.changes import KEY_SEP

NUMBER, MATCH = "number", "match"
#: a decision: the claimant gets the number / the holder keeps it; the account is the proposed user / a new one
GIVE, KEEP, CONFIRM, REJECT = "give", "keep", "confirm", "reject"
DECISIONS = {NUMBER: (GIVE, KEEP), MATCH: (CONFIRM, REJECT)}
#: a case's status: waits for a decision, decided (applied by the next run), the holder keeps the number, a
#: rejected match (the account stays skipped), ended
OPEN, DECIDED, KEPT, REJECTED, CLOSED = "open", "decided", "kept", "rejected", "closed"

#: a case found by this run: the claimant account, and for a number what is held and who holds it; for a match
#: the candidates (JSON: [{id, username, first_name, last_name, email, extension, by: [...], also: [...]}])
CASES_SCHEMA = pa.schema([
    ("key", pa.string()), ("kind", pa.string()), ("account", pa.string()), ("username", pa.string()),
    ("ad_username", pa.string()), ("domain", pa.string()), ("external_id", pa.string()),
    ("field", pa.string()), ("value", pa.string()), ("holder_id", pa.int64()), ("holder", pa.string()),
    ("detail", pa.string()),
])
#: the decisions this run applied: case id, the version it read, the user it concerns (apply closes the case only
#: when that user's change landed), how the case ends (``None``: it stays, e.g. a rejected match still skipped)
DECIDED_SCHEMA = pa.schema([("case_id", pa.int64()), ("version", pa.int64()), ("user_id", pa.int64()),
                            ("outcome", pa.string()), ("status", pa.string())])
#: numbers taken from their holder by a ``give`` decision: cleared on the holder before the claimant gets them
TAKES_SCHEMA = pa.schema([("id", pa.int64()), ("username", pa.string()), ("field", pa.string()),
                          ("value", pa.string()), ("case_id", pa.int64())])


def claimant(ad_username: str | None, domain: str | None, anchor: str | None) -> str:
    """Who claims, as a case key part: the anchor (survives renames), else the sync key; case-insensitive."""
    if anchor and anchor.strip():
        return "a:" + anchor.strip().casefold()
    return "k:" + (ad_username or "").strip().casefold() + KEY_SEP + (domain or "").strip().casefold()


def number_key(who: str, field: str) -> str:
    return f"{NUMBER}|{who}|{field}"


def match_key(who: str) -> str:
    return f"{MATCH}|{who}"


@dataclass(frozen=True)
class Decision:
    """A live case as the diff reads it: what was decided (``None``: nobody yet) and the version decided."""

    case_id: int
    version: int
    status: str
    decision: str | None = None
    user_id: int | None = None  # confirm: the user; a held number: its holder
    field: str | None = None
    value: str | None = None

    def row(self, status: str, outcome: str, user_id: int | None | bool = True) -> dict:
        """This decision as a row of the plan's ``decided`` table: how the case ends (``status``, ``outcome``);
        ``user_id`` the user it concerns (True: the decision's own, None: none)."""
        return {"case_id": self.case_id, "version": self.version,
                "user_id": self.user_id if user_id is True else user_id, "status": status, "outcome": outcome}
