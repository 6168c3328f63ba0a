"""A bound LDAP connection: settings, the three security modes, TLS checks and errors in words, paged search.

Security modes follow the application suite's ``Authentication.UseSecureLDAPConnection`` setting: ``SecureOnly`` (LDAPS,
or StartTLS when asked; the default), ``SecureThenUnsecure`` (secure first, plain LDAP with a warning only when
no secure port can be reached — never after a failed certificate check or StartTLS) and ``UnSecureOnly``. Reads are paged, so directories with AD's 1000-entry
size limit are read whole.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import ldap3
from ldap3.core import exceptions as lx

from usersync.core.connection import ConnectionFields
from usersync.core.progress import Progress
from usersync.sources.errors import (
    SourceAuthError,
    SourceError,
    SourceQueryError,
    SourceTlsError,
    SourceUnreachable,
)
from usersync.sources.ldap.decoding import decode_text, lean_entries, values_of
from usersync.sources.ldap.forest import GC_PORTS, outside_hint
from usersync.sources.record import SourceRecord

log = logging.getLogger(__name__)
PAGED_RESULTS = "1.2.840.113556.1.4.319"


class SecurityMode(str, Enum):
    SECURE_ONLY = "SecureOnly"
    SECURE_THEN_UNSECURE = "SecureThenUnsecure"
    UNSECURE_ONLY = "UnSecureOnly"


@dataclass(frozen=True)
class LdapSettings:
    """Everything needed to reach and bind to the directory. ``password`` never shows in a repr."""

    host: str  # one domain controller; ``hosts`` lists them all
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    mode: SecurityMode = SecurityMode.SECURE_ONLY
    start_tls: bool = False  # secure channel by StartTLS on the plain port instead of LDAPS
    ldaps_port: int = 636
    ldap_port: int = 389
    ca_certs_file: str | None = None  # CA bundle; None: the system's trusted CAs
    connect_timeout: int = 10
    receive_timeout: int = 120  # whole seconds: ldap3 packs it into a socket option
    #: every domain controller, in order of preference: ``host`` or ``host:port`` (``[v6]:port``); empty: ``host``
    hosts: tuple[str, ...] = ()

    @classmethod
    def from_connection(cls, conn: ConnectionFields) -> LdapSettings:
        """Connection fields: host, port (optional), login (bind DN or user@domain), password. Extras:
        ``security_mode`` (SecureOnly | SecureThenUnsecure | UnSecureOnly; default SecureOnly), ``start_tls``
        (bool), ``ldaps_port`` (636), ``ldap_port`` (389), ``ca_certs_file`` (PEM bundle), ``connect_timeout``,
        ``receive_timeout`` (seconds). When ``port`` is set it is the port of the first channel tried.

        ``host`` may name several domain controllers, comma-separated, in order of preference
        (``dc1.corp.example, dc2.corp.example``); one may carry its own port (``dc3.corp.example:1636``), which
        then stands for ``port``."""
        extra = conn.extra
        if not conn.host:
            raise SourceError(f"connection {conn.conn_id!r} has no host")
        mode_name = extra.get("security_mode", SecurityMode.SECURE_ONLY.value)
        try:
            mode = SecurityMode(mode_name)
        except ValueError:
            allowed = ", ".join(m.value for m in SecurityMode)
            raise SourceError(f"connection {conn.conn_id!r}: security_mode {mode_name!r} is not one of {allowed}") from None
        start_tls = conn.flag("start_tls")
        ldaps_port = int(extra.get("ldaps_port", 636))
        ldap_port = int(extra.get("ldap_port", 389))
        if conn.port:
            if mode is SecurityMode.UNSECURE_ONLY or start_tls:
                ldap_port = int(conn.port)
            else:
                ldaps_port = int(conn.port)
        hosts = tuple(h.strip() for h in conn.host.split(",") if h.strip())
        if not hosts:
            raise SourceError(f"connection {conn.conn_id!r} has no host")
        for entry in hosts:
            split_host(entry, conn.conn_id)  # refuse a malformed entry now, naming it
        return cls(
            host=split_host(hosts[0])[0], hosts=hosts, login=conn.login or None, password=conn.password or None, mode=mode,
            start_tls=start_tls, ldaps_port=ldaps_port, ldap_port=ldap_port,
            ca_certs_file=extra.get("ca_certs_file") or None,
            connect_timeout=int(extra.get("connect_timeout", 10)),
            receive_timeout=int(extra.get("receive_timeout", 120)),
        )

    def per_host(self) -> list[LdapSettings]:
        """One settings per domain controller, in order of preference (each with its own port, if it names one)."""
        out = []
        for entry in self.hosts or (self.host,):
            host, port = split_host(entry)
            one = replace(self, host=host, hosts=(entry,))
            if port is not None:
                if self.mode is SecurityMode.UNSECURE_ONLY or self.start_tls:
                    one = replace(one, ldap_port=port)
                else:
                    one = replace(one, ldaps_port=port)
            out.append(one)
        return out

    def preferring(self, entry: str | None, only: bool = False) -> LdapSettings:
        """These settings with ``entry`` (one of ``hosts``) tried first — or alone (``only``)."""
        if not entry or entry not in self.hosts:
            return self
        rest = () if only else tuple(h for h in self.hosts if h != entry)
        return replace(self, host=split_host(entry)[0], hosts=(entry, *rest))

    def describe(self, secure: bool) -> str:
        if secure and not self.start_tls:
            return f"ldaps://{self.host}:{self.ldaps_port}"
        return f"ldap://{self.host}:{self.ldap_port}" + (" (StartTLS)" if secure else "")


def split_host(entry: str, conn_id: str | None = None) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port or None); SourceError for a malformed entry."""
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]\s]+)(?::(\d+))?|([0-9A-Fa-f:]+)", entry.strip())
    if not match:
        where = f"connection {conn_id!r}: " if conn_id else ""
        raise SourceError(f"{where}host entry {entry!r} is not 'host', 'host:port' or '[IPv6]:port'")
    host = match[1] or match[3] or match[5]
    port = match[2] or match[4]
    return host, int(port) if port else None


class LdapDirectory:
    """An open, bound connection. Use ``LdapDirectory.open(settings)``; close with ``close()`` or ``with``.

    ``skipped``: the domain controllers tried before this one and why they were passed over.
    """

    def __init__(self, conn: ldap3.Connection, settings: LdapSettings, url: str, fell_back: bool,
                 skipped: list[str] | None = None):
        self.conn, self.settings, self.url, self.fell_back = conn, settings, url, fell_back
        self.skipped = skipped or []
        self.searches = 0  # search requests sent (each page counts)...
        self.entries = 0  # ...and entries the server returned: what a single-account run reports it read

    @property
    def global_catalog(self) -> bool:
        """Bound to a Global Catalog port (3268, 3269): the whole forest, partial attribute set only."""
        return self.conn.server.port in GC_PORTS

    @property
    def host_entry(self) -> str:
        """The connection's host entry of the domain controller this directory is bound to."""
        return self.settings.hosts[0] if self.settings.hosts else self.settings.host

    @classmethod
    def open(cls, settings: LdapSettings, read_only: bool = True) -> LdapDirectory:
        """Bind to the first domain controller that answers, in the order the connection names them: a DC that
        refuses, times out or fails TLS is skipped with a warning; wrong credentials stop at once (every DC of a
        domain would refuse them, and each try counts towards the account's lockout). A secure channel is tried
        on every DC before ``SecureThenUnsecure`` falls back to plain LDAP. ``read_only`` False: a connection
        that may modify entries (write-back)."""
        candidates = settings.per_host()
        skipped: list[str] = []
        failures: list[SourceError] = []
        passes = [False] if settings.mode is SecurityMode.UNSECURE_ONLY else \
            [True, False] if settings.mode is SecurityMode.SECURE_THEN_UNSECURE else [True]
        for secure in passes:
            refused = [f for f in failures if isinstance(f, SourceTlsError)]
            if not secure and refused:  # someone may be in between: the password never goes out in clear
                raise SourceTlsError(
                    f"{refused[0]} — SecureThenUnsecure falls back to plain LDAP only when no secure port can be "
                    "reached, never after a certificate or StartTLS failure (a server presenting another "
                    "certificate may be listening in between); nothing was sent in clear: trust the DC's CA "
                    "(ca_certs_file) or fix its certificate")
            if not secure and failures:
                log.warning("no domain controller's secure port could be reached (%s); falling back to UNENCRYPTED "
                            "LDAP as mode SecureThenUnsecure allows", "; ".join(map(str, failures)))
            for one in candidates:
                try:
                    conn = _bind(one, secure, read_only)
                except (SourceUnreachable, SourceTlsError) as exc:
                    failures.append(exc)
                    if len(candidates) > 1:
                        skipped.append(f"domain controller {one.describe(secure)} skipped: {exc}")
                        log.warning("%s", skipped[-1])
                    continue
                return cls(conn, one, one.describe(secure), fell_back=secure is False and passes[0] is True,
                           skipped=skipped)
        if len(failures) == 1:
            raise failures[0]
        kind = type(failures[-1]) if all(type(f) is type(failures[-1]) for f in failures) else SourceUnreachable
        raise kind(f"none of the {len(candidates)} domain controllers answered: " + "; ".join(map(str, failures)))

    def __enter__(self) -> LdapDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.conn.unbind()
        except lx.LDAPException:
            pass

    def root_dse(self, *attributes: str) -> dict[str, list[str]]:
        """Attributes of the server's rootDSE (e.g. defaultNamingContext)."""
        try:
            self.conn.search("", "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
        except lx.LDAPException as exc:
            raise SourceQueryError(f"cannot read the rootDSE of {self.url}: {exc}") from None
        entry = next((e for e in self.conn.response if e.get("type") == "searchResEntry"), None)
        raw = entry.get("raw_attributes", {}) if entry else {}
        return {k: [decode_text(v) for v in vals] for k, vals in raw.items()}

    def naming_context(self) -> str | None:
        """The directory's default naming context (AD), else its first naming context (OpenLDAP)."""
        dse = {k.lower(): v for k, v in self.root_dse("defaultNamingContext", "namingContexts").items()}
        contexts = dse.get("defaultnamingcontext") or dse.get("namingcontexts") or []
        return contexts[0] if contexts else None

    def default_users_base(self) -> str:
        """The default for a blank object path: ``CN=Users`` of the default naming context."""
        context = self.naming_context()
        if not context:
            raise SourceQueryError(
                f"{self.url} announces no defaultNamingContext; set 'object_path' in the rules file"
            )
        return f"CN=Users,{context}"

    def search(self, base: str, ldap_filter: str, attributes: list[str], page_size: int = 1000,
               scope: str = "subtree", controls: list | None = None) -> Iterator[SourceRecord]:
        """Paged search yielding one ``SourceRecord`` per entry, with progress lines while it reads."""
        progress = Progress(f"extract {base}", log)
        cookie: bytes | None = None
        ldap_scope = {"subtree": ldap3.SUBTREE, "level": ldap3.LEVEL, "base": ldap3.BASE}[scope]
        while True:
            self.searches += 1
            try:
                self.conn.search(base, ldap_filter, ldap_scope, attributes=attributes,
                                 paged_size=page_size, paged_cookie=cookie, controls=controls)
            except (lx.LDAPNoSuchObjectResult, lx.LDAPReferralResult) as exc:
                found = "does not exist" if isinstance(exc, lx.LDAPNoSuchObjectResult) else "is elsewhere (a referral)"
                raise SourceQueryError(f"object path {base!r} {found} on {self.url}{self._outside(base)}") from None
            except lx.LDAPInvalidFilterError as exc:
                raise SourceQueryError(f"invalid LDAP filter {ldap_filter!r}: {exc}") from None
            except lx.LDAPOperationResult as exc:
                raise SourceQueryError(f"search of {base!r} on {self.url} failed: {exc}") from None
            except lx.LDAPCommunicationError as exc:
                raise SourceUnreachable(f"lost the connection to {self.url} while reading: {exc}") from None
            outcome = self.conn.result.get("description")
            if outcome in ("sizeLimitExceeded", "timeLimitExceeded"):
                # ldap3 does not raise for these; a truncated read must never look like "the others left"
                raise SourceQueryError(
                    f"search of {base!r} on {self.url} was cut short by the server ({outcome}); "
                    f"lower page_size (now {page_size}) below the server's limit"
                )
            page = 0
            for entry in self.conn.response:
                if entry.get("type") != "searchResEntry":
                    continue  # AD answers with referrals too
                attrs = {k: values_of(v, k) for k, v in whole_attributes(entry, self.url).items()}
                page += 1
                self.entries += 1
                yield SourceRecord(entry["dn"], attrs)
            progress.advance(page)
            control = self.conn.result.get("controls", {}).get(PAGED_RESULTS)
            last, cookie = cookie, control["value"]["cookie"] if control else None
            if not cookie:
                break
            if cookie == last:  # the server would hand the same page on for ever
                raise SourceQueryError(f"search of {base!r} on {self.url}: the server answered with the same "
                                       "paged-results cookie twice; the read cannot end, so it stops here and nothing "
                                       "is deleted")
        progress.done()


    def _outside(self, base: str) -> str:
        """The hint for a base outside this DC's domain (a search that failed anyway: one more read is cheap)."""
        try:
            dse = {k.lower(): v for k, v in self.root_dse("defaultNamingContext").items()}
        except SourceQueryError:
            return ""
        contexts = dse.get("defaultnamingcontext") or []
        return outside_hint(base, contexts[0] if contexts else None)


def whole_attributes(entry: dict[str, Any], url: str) -> dict[str, list[bytes]]:
    """An entry's raw attributes with ranged parts gone: a DC sends at most MaxValRange values at a time
    (``member;range=0-1499``) and ldap3's auto_range collects the rest under the plain name. A ranged part
    with no plain name beside it was not collected: refuse it rather than sync a partial list."""
    raw: dict[str, list[bytes]] = entry["raw_attributes"]
    out = {k: v for k, v in raw.items() if ";range=" not in k.lower()}
    for name in raw.keys() - out.keys():
        plain = name.split(";", 1)[0]
        if plain not in out:
            raise SourceQueryError(
                f"{entry.get('dn')}: {url} sent only part of the values of {plain} ({name}) and the rest could not "
                "be read; the bind account may lack the right to read them, or the attribute has more values than "
                "the server lets one search return")
    return out


def _bind(settings: LdapSettings, secure: bool, read_only: bool = True) -> ldap3.Connection:
    """Open the channel, secure it if asked, bind; translate ldap3's errors into ``SourceError``s."""
    url = settings.describe(secure)
    tls = None
    if secure:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_certs_file,
                        version=ssl.PROTOCOL_TLS_CLIENT)
    use_ldaps = secure and not settings.start_tls
    server = ldap3.Server(
        settings.host,
        port=settings.ldaps_port if use_ldaps else settings.ldap_port,
        use_ssl=use_ldaps,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=settings.connect_timeout,
    )
    conn = ldap3.Connection(
        server,
        user=settings.login or None,
        password=settings.password or None,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=read_only,
        raise_exceptions=True,
        receive_timeout=settings.receive_timeout,
        auto_referrals=False,
        check_names=False,
    )
    lean_entries(conn)
    try:
        conn.open()
        if secure and settings.start_tls:
            conn.start_tls()
        conn.bind()
    except lx.LDAPStartTLSError as exc:
        raise SourceTlsError(f"StartTLS with {url} failed: {_tls_cause(str(exc), settings)}") from None
    except lx.LDAPSocketOpenError as exc:
        text = str(exc)
        if "timed out" in text.lower():
            raise SourceUnreachable(
                f"{url} accepted the connection but did not answer within {settings.receive_timeout} s "
                f"(receive_timeout; a hung server or a firewall?): {_reason(exc)}") from None
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper() or "TLS" in text.upper():
            raise SourceTlsError(f"TLS handshake with {url} failed: {_tls_cause(text, settings)}") from None
        raise SourceUnreachable(f"cannot connect to {url}: {_reason(exc)}") from None
    except lx.LDAPCommunicationError as exc:
        raise SourceUnreachable(f"cannot talk to {url}: {_reason(exc)}") from None
    except lx.LDAPInvalidCredentialsResult:
        raise SourceAuthError(f"{url} refused the credentials of {settings.login!r} (invalid credentials)") from None
    except lx.LDAPStrongerAuthRequiredResult:
        raise SourceAuthError(
            f"{url} requires an encrypted connection for binding; use SecureOnly (LDAPS) or StartTLS"
        ) from None
    except (lx.LDAPBindError, lx.LDAPOperationResult) as exc:
        raise SourceAuthError(f"bind as {settings.login!r} to {url} failed: {_reason(exc)}") from None
    except lx.LDAPException as exc:
        raise SourceError(f"cannot open {url}: {_reason(exc)}") from None
    return conn


def _tls_cause(text: str, settings: LdapSettings) -> str:
    """Why a certificate was refused, in the words an admin acts on (the TLS library's text follows)."""
    bundle = f"the CA bundle {settings.ca_certs_file}" if settings.ca_certs_file else "the system's trusted CAs"
    lowered = text.lower()
    if "doesn't match" in lowered or "hostname mismatch" in lowered:
        names = ", ".join(re.findall(r"'(?:DNS|IP Address)', '([^']+)'", text)) or "other names"
        cause = (f"the certificate is not issued for the host {settings.host} (it names {names}); connect by a "
                 "name the certificate holds, or have it reissued")
    elif "expired" in lowered:
        cause = "the certificate has expired; renew it on the directory server"
    elif ("self-signed" in lowered or "self signed" in lowered) and "in certificate chain" not in lowered:
        cause = f"the certificate is self-signed and not in {bundle}; add it (or its CA) there"
    elif "unable to get local issuer" in lowered or "unknown ca" in lowered or "in certificate chain" in lowered:
        cause = f"the certificate's issuer is not in {bundle} (untrusted CA)"
    else:
        cause = "untrusted or wrong certificate?"
    return f"{cause} — {_reason(Exception(text))}"


def _reason(exc: Exception) -> str:
    """ldap3 wraps socket errors in nested tuples; keep the readable part, shortened."""
    text = re.sub(r"^[(\"', ]+|[)\"', ]+$", "", str(exc))
    return text if len(text) < 400 else text[:400] + "…"
