"""Sources: each reads an external directory into ``SourceRecord``s. Only ``extract`` differs per source."""

from usersync.sources.errors import (
    SourceAuthError,
    SourceError,
    SourceQueryError,
    SourceTlsError,
    SourceUnreachable,
)

__all__ = ["SourceError", "SourceUnreachable", "SourceAuthError", "SourceTlsError", "SourceQueryError"]
