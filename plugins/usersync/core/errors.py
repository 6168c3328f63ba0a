"""What every error of the domain says of itself: whether running the step again can help.

An orchestrator retries a step that failed with a retryable error (a server that did not answer) and fails at
once on the rest (bad credentials, invalid rules, a blocked plan): those need a person, and a retry would only
repeat the failure and delay the alarm. Errors from outside the domain are retried.
"""

from __future__ import annotations

from typing import ClassVar


class UsersyncError(Exception):
    """Base of the domain's errors; ``retryable`` is False unless a subclass says otherwise."""

    retryable: ClassVar[bool] = False


class Blocked(UsersyncError):
    """A guard stopped a step before it wrote anything (the mass-delete guard, the write-back guard)."""


def retryable(exc: BaseException) -> bool:
    """Whether running the failed step again can help: the domain's errors say so; any other error may be
    passing (a lost connection, a full disk) and is retried."""
    return exc.retryable if isinstance(exc, UsersyncError) else True
