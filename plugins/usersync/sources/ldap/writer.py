"""Write-back to Active Directory / LDAP: one modify per value that deletes the value the run read and adds the
new one. The directory applies a modify whole or not at all, so a value an admin changed since the read makes
it fail (no such value to delete, or a second value on a single-valued attribute) and nothing is overwritten.

Only over LDAPS or StartTLS: a connection whose security_mode is UnSecureOnly is refused, and SecureThenUnsecure
never falls back to plain LDAP for writing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace

import ldap3
from ldap3.core import exceptions as lx

from usersync.core.connection import ConnectionFields
from usersync.sources.errors import SourceError, SourceUnreachable
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings, SecurityMode
from usersync.sources.planned_write import Write, shown
from usersync.sources.spec import SourceSpecBase
from usersync.sources.writer import CHANGED, FAILED, WRITTEN, DirectoryWriter, Outcome

log = logging.getLogger(__name__)

#: a modify that fails with one of these found the entry other than the run read it: changed meanwhile
_CHANGED = (lx.LDAPNoSuchAttributeResult, lx.LDAPAttributeOrValueExistsResult, lx.LDAPConstraintViolationResult,
            lx.LDAPNoSuchObjectResult)


class LdapWriter(DirectoryWriter):
    def __init__(self, settings: LdapSettings):
        self.settings = settings
        self._directory: LdapDirectory | None = None

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, connection: ConnectionFields) -> LdapWriter:
        settings = LdapSettings.from_connection(connection)
        if settings.mode is SecurityMode.UNSECURE_ONLY:
            raise SourceError(f"connection {connection.conn_id!r} uses plain LDAP (security_mode UnSecureOnly): "
                              "write-back runs only over LDAPS or StartTLS, so nothing was written; set "
                              "security_mode SecureOnly (and start_tls, if the server has no LDAPS port)")
        return cls(replace(settings, mode=SecurityMode.SECURE_ONLY))

    def open(self) -> None:
        if self._directory is None:
            self._directory = LdapDirectory.open(self.settings, read_only=False)
            log.info("write-back connection: %s, bound as %s", self._directory.url, self.settings.login)

    def write(self, writes: Sequence[Write]) -> Iterator[Outcome]:
        for write in writes:
            yield self._one(write)

    def _one(self, write: Write) -> Outcome:
        assert self._directory is not None, "open() first"
        changes = ([(ldap3.MODIFY_DELETE, [write.old])] if write.old is not None else []) + \
                  ([(ldap3.MODIFY_ADD, [write.new])] if write.new is not None else [])
        try:
            self._directory.conn.modify(write.target, {write.attribute: changes})
        except _CHANGED as exc:
            return Outcome(CHANGED, f"{write.attribute} is no longer {shown(write.old)} in the directory "
                                    f"({_result(exc)}): changed since the run read it, left as it is")
        except lx.LDAPInsufficientAccessRightsResult as exc:
            return Outcome(FAILED, f"insufficient access rights: the bind account {self.settings.login!r} may not "
                                   f"write {write.attribute} on {write.target} ({_result(exc)}); delegate "
                                   f"'Write {write.attribute}' on the users' OU to it")
        except lx.LDAPCommunicationError as exc:
            raise SourceUnreachable(f"lost the connection to {self._directory.url} while writing: {exc}") from None
        except lx.LDAPOperationResult as exc:
            return Outcome(FAILED, f"the directory refused to write {write.attribute} on {write.target}: "
                                   f"{_result(exc)}")
        return Outcome(WRITTEN)

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None



def _result(exc: lx.LDAPOperationResult) -> str:
    """The server's result name and its own message (AD's carries a code, e.g. ``00002098: … no write access``)."""
    message = (getattr(exc, "message", "") or "").strip()
    return f"{exc.description}{': ' + message if message else ''}"
