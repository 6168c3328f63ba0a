"""Trigger parameters as a run receives them: typed by the DAG's Params, checked here for what a schema cannot say."""

from __future__ import annotations

import re
from typing import Any

from usersync.core.errors import UsersyncError

#: control characters: in an account name they would end up in a mail header, a log line or a filter
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadParameter(UsersyncError, ValueError):
    """A trigger parameter this run cannot use; nothing was read or written. Retrying cannot help."""

    retry_helps = False


def one_account(value: Any) -> str | None:
    """The ``account`` parameter: None (the whole source) or the account named, without control characters."""
    text = str(value or "").strip()
    if not text:
        return None
    if CONTROL.search(text):
        raise BadParameter(f"the account parameter {printable(text)} holds a control character (a line break, a tab, "
                           "…); give the account name alone; nothing was read or written")
    return text


def printable(text: str) -> str:
    """``text`` quoted, control characters written as escapes: safe in a mail header, a log line or a page."""
    return repr(text)


def run_to_undo(value: Any) -> str | None:
    """The ``undo_run`` parameter: None, or the id of a finished run of this source to undo."""
    text = str(value or "").strip()
    if not text:
        return None
    if CONTROL.search(text) or len(text) > 250:
        raise BadParameter(f"the undo_run parameter {printable(text[:80])} is not a run id (one line, at most 250 "
                           "characters, as the reports page shows it); nothing was read or written")
    return text
