"""Source failures, each with a message an administrator can act on (never a password)."""

from usersync.core.errors import UsersyncError


class SourceError(UsersyncError, RuntimeError):
    """The source could not be read; the run must stop before anything is written."""


class SourceUnreachable(SourceError):
    """No connection: wrong host or port, firewall, server down, timeout."""

    retryable = True


class SourceTlsError(SourceError):
    """The secure channel failed: untrusted or mismatched certificate, StartTLS refused."""


class SourceAuthError(SourceError):
    """The server refused the credentials."""


class SourceQueryError(SourceError):
    """Connected and bound, but the query failed (wrong object path, bad filter, size limit)."""


class EmptySource(SourceError):
    """The read succeeded but found nobody: never taken to mean "everyone left"."""

    #: how the source was read when it was found empty, if not as the run planned (a delta read gone full)
    reading: str | None = None
