"""One guarded, approvable step: what every guard before a write shares.

A guard (the mass-delete guard, the write-back guard) gives a verdict on what a step is about to write. Where
the verdict says *blocked*, ``route`` decides what the run does next: proceed when nothing would be written
anyway (a dry run, one account), ask an admin when approvals are on, or go on to the writing step, which
refuses (``Guard.enforce``). The writing step checks again on what it loaded — never on counts handed over —
so a plan that grew on the way is stopped there too. An approval or a trigger-time override lifts the guard
for one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from usersync.core.errors import Blocked

PROCEED, ASK, BLOCK = "proceed", "ask", "block"


class GuardVerdict(Protocol):
    """What a guard says of a step: blocked or not, in words for the log and the report, and as JSON."""

    @property
    def blocked(self) -> bool: ...

    @property
    def message(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunMode:
    """What of the run decides how a blocked verdict is met."""

    dry_run: bool = False
    one_account: bool = False  # a single-account run: nothing a guard counts is at stake
    approvals: bool = True  # safety.approve_blocked_runs: a blocked run waits for an admin


def route(verdict: GuardVerdict, mode: RunMode) -> str:
    """``PROCEED`` (not blocked, or nothing will be written), ``ASK`` (blocked, approvals on) or ``BLOCK``
    (blocked, approvals off: the writing step fails, having written nothing)."""
    if not verdict.blocked or mode.dry_run or mode.one_account:
        return PROCEED
    return ASK if mode.approvals else BLOCK


@dataclass(frozen=True)
class Guard:
    """A guard's names: what it is called, the trigger parameter that lifts it for one run, and the error a
    blocked step fails with."""

    name: str
    override: str
    error: type[Blocked]

    def enforce(self, verdict: GuardVerdict) -> None:
        """Refuse to write under a blocked verdict."""
        if verdict.blocked:
            raise self.error(verdict.message)


@dataclass(frozen=True)
class RunVerdicts:
    """The verdicts of the guards before a run's write, by guard name (``mass-delete`` first, then ``change``):
    one approval answers them all. Its JSON is the first verdict's, with ``blocked`` and ``message`` for the whole,
    ``blocked_by`` (the guards that block) and each further verdict under its name."""

    verdicts: dict[str, GuardVerdict]

    @property
    def blocked(self) -> bool:
        return any(v.blocked for v in self.verdicts.values())

    @property
    def message(self) -> str:
        first, *more = self.verdicts.values()
        return "\n".join([first.message] + [v.message for v in more if v.blocked or _lifted(v)])

    def to_json(self) -> dict[str, Any]:
        first, *_ = self.verdicts.values()
        return {**first.to_json(), **{name: v.to_json() for name, v in list(self.verdicts.items())[1:]},
                "blocked": self.blocked, "message": self.message,
                "blocked_by": [name for name, v in self.verdicts.items() if v.blocked]}


def _lifted(verdict: GuardVerdict) -> bool:
    """A verdict worth a line though not blocked: an approval or an override lifted it."""
    return bool(verdict.to_json().get("allowed_by_override"))
