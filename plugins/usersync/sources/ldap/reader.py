"""Active Directory / LDAP source, built on ldap3.

Security modes follow the vendor's ``Authentication.UseSecureLDAPConnection`` setting: ``SecureOnly`` (LDAPS,
or StartTLS when asked; the default), ``SecureThenUnsecure`` (secure first, plain LDAP with a warning if the
secure channel cannot be opened) and ``UnSecureOnly``. Reads are paged, so directories with AD's 1000-entry
size limit are read whole, and only the attributes the rules need are requested.
"""

from __future__ import annotations

import logging
import re
import ssl
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator

import ldap3
from ldap3.core import exceptions as lx

from usersync.plan.mapping import SourceRecord
from usersync.progress import Progress
from usersync.rules.model import LdapSourceSpec
from usersync.sources.ldap import ad_delta
from usersync.sources.base import Source
from usersync.sources.ldap.partitions import partition_filter
from usersync.sources.errors import (
    SourceAuthError,
    SourceError,
    SourceQueryError,
    SourceTlsError,
    SourceUnreachable,
)

log = logging.getLogger(__name__)
PAGED_RESULTS = "1.2.840.113556.1.4.319"


class SecurityMode(str, Enum):
    SECURE_ONLY = "SecureOnly"
    SECURE_THEN_UNSECURE = "SecureThenUnsecure"
    UNSECURE_ONLY = "UnSecureOnly"


@dataclass(frozen=True)
class LdapSettings:
    """Everything needed to reach and bind to the directory. ``password`` never shows in a repr."""

    host: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    mode: SecurityMode = SecurityMode.SECURE_ONLY
    start_tls: bool = False  # secure channel by StartTLS on the plain port instead of LDAPS
    ldaps_port: int = 636
    ldap_port: int = 389
    ca_certs_file: str | None = None  # CA bundle; None: the system's trusted CAs
    connect_timeout: int = 10
    receive_timeout: int = 120  # whole seconds: ldap3 packs it into a socket option

    def describe(self, secure: bool) -> str:
        if secure and not self.start_tls:
            return f"ldaps://{self.host}:{self.ldaps_port}"
        return f"ldap://{self.host}:{self.ldap_port}" + (" (StartTLS)" if secure else "")


class LdapDirectory:
    """An open, bound connection. Use ``LdapDirectory.open(settings)``; close with ``close()`` or ``with``."""

    def __init__(self, conn: ldap3.Connection, settings: LdapSettings, url: str, fell_back: bool):
        self.conn, self.settings, self.url, self.fell_back = conn, settings, url, fell_back

    @classmethod
    def open(cls, settings: LdapSettings) -> "LdapDirectory":
        if settings.mode is SecurityMode.UNSECURE_ONLY:
            return cls(_bind(settings, secure=False), settings, settings.describe(False), False)
        try:
            return cls(_bind(settings, secure=True), settings, settings.describe(True), False)
        except (SourceUnreachable, SourceTlsError) as exc:
            if settings.mode is not SecurityMode.SECURE_THEN_UNSECURE:
                raise
            log.warning(
                "secure LDAP failed (%s); falling back to UNENCRYPTED LDAP on %s as mode SecureThenUnsecure allows",
                exc, settings.describe(False),
            )
            return cls(_bind(settings, secure=False), settings, settings.describe(False), True)

    def __enter__(self) -> "LdapDirectory":
        return self

    def __exit__(self, *exc) -> None:
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
        return {k: [_decode(v) for v in vals] for k, vals in raw.items()}

    def default_users_base(self) -> str:
        """The seed's default for a blank object path: ``CN=Users`` of the default naming context."""
        dse = {k.lower(): v for k, v in self.root_dse("defaultNamingContext", "namingContexts").items()}
        context = (dse.get("defaultnamingcontext") or dse.get("namingcontexts") or [None])[0]
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
            try:
                self.conn.search(base, ldap_filter, ldap_scope, attributes=attributes,
                                 paged_size=page_size, paged_cookie=cookie, controls=controls)
            except lx.LDAPNoSuchObjectResult:
                raise SourceQueryError(f"object path {base!r} does not exist on {self.url}") from None
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
                attrs = {k: _values(v, k) for k, v in entry["raw_attributes"].items()}
                page += 1
                yield SourceRecord(entry["dn"], attrs)
            progress.advance(page)
            control = self.conn.result.get("controls", {}).get(PAGED_RESULTS)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                break
        progress.done()


#: AD's "account disabled" bit of userAccountControl, as a matching-rule filter
AD_DISABLED = "(userAccountControl:1.2.840.113556.1.4.803:=2)"


class LdapSource(Source):
    """Active Directory / LDAP as a ``Source``: bind, resolve the object path, paged search."""

    def __init__(self, spec: LdapSourceSpec, settings: LdapSettings, attributes: list[str]):
        self.spec, self.settings, self.attributes = spec, settings, attributes
        self._directory: LdapDirectory | None = None

    def _open(self) -> LdapDirectory:
        if self._directory is None:
            self._directory = LdapDirectory.open(self.settings)
        return self._directory

    def search_filter(self) -> str:
        """The rules' filter, AND not disabled (``exclude``), AND member of the scope groups (nested)."""
        parts = [self.spec.filter]
        if self.spec.disabled_accounts == "exclude" and self.spec.type == "active_directory":
            parts.append(f"(!{AD_DISABLED})")
        if self.spec.member_of:
            parts.append(ad_delta.member_filter(self.spec.member_of))
        return parts[0] if len(parts) == 1 else f"(&{''.join(parts)})"

    def check(self) -> dict:
        """Bind, resolve the base, prove the scope groups exist; for delta sources, the DC's state too."""
        directory = self._open()
        base = self.spec.object_path.strip() or directory.default_users_base()
        warnings = []
        if directory.fell_back:
            warnings.append(f"secure LDAP failed; this run used UNENCRYPTED LDAP ({directory.url}) "
                            "because the connection's security_mode is SecureThenUnsecure")
        ad_delta.check_groups(directory, self.spec.member_of)
        info = {"url": directory.url, "base": base, "filter": self.search_filter(), "warnings": warnings}
        if self.spec.delta is not None:
            info["dc"] = ad_delta.dc_state(directory, self.spec.member_of)  # read before any search: the watermark
        return info

    def records(self, info: dict) -> Iterator[SourceRecord]:
        return self.partition(info, 0, 1)

    def partition(self, info: dict, index: int, count: int) -> Iterator[SourceRecord]:
        """One paged search per partition: the rules' filter AND the partition's (see ``partitions``).

        A delta read (``info["read"]``) is small: partition 0 reads every entry changed since the watermark in
        one search, the other partitions read nothing (and open no connection).
        """
        since = _delta_since(info)
        if since is not None:
            if index:
                return
            ldap_filter = ad_delta.changed_since(info["filter"], since)
        else:
            part = partition_filter(self.spec.key_attribute, index, count)
            ldap_filter = f"(&{info['filter']}{part})" if part else info["filter"]
        yield from self._open().search(info["base"], ldap_filter, self.attributes, self.spec.page_size,
                                       self.spec.scope)

    def removed(self, info: dict, in_scope: set[str]) -> tuple[list[str], int]:
        """On a delta read: anchors of the accounts deleted or moved out of scope since the watermark."""
        since = _delta_since(info)
        if since is None:
            return [], 0
        return ad_delta.removed_anchors(self._open(), in_scope, since, info["dc"]["naming_context"])

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None


def _delta_since(info: dict) -> int | None:
    read = info.get("read") or {}
    return read.get("since") if read.get("mode") == "delta" else None


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


#: AD's binary GUID attributes, read as AD's own text form ``{xxxxxxxx-…}``
GUID_ATTRIBUTES = frozenset({"objectguid", "invocationid"})


def _values(raw: list[bytes], name: str = "") -> str | list[str] | None:
    """An attribute's values as text. Bytes that are not UTF-8 become U+FFFD, which mapping refuses with the
    reason — never a hex string synced as if it were a name."""
    if not raw:
        return None
    if name.lower() in GUID_ATTRIBUTES:  # binary, little-endian GUID: keep AD's own text form
        return "{" + str(uuid.UUID(bytes_le=raw[0])) + "}"
    decoded = [v.decode("utf-8", "replace") for v in raw]
    return decoded[0] if len(decoded) == 1 else decoded


def _lean_entries(conn: ldap3.Connection) -> None:
    """Decode search entries to ``dn`` + ``raw_attributes`` only, for this connection.

    ldap3 turns every entry into both raw bytes and formatted text (through per-value configuration lookups);
    this source reads only the raw bytes and decodes them once itself. Measured at 50,000 entries: the
    formatted copy cost more than the BER decoding. Any other response (and an entry carrying controls) goes
    through ldap3's own decoder.
    """
    strategy = conn.strategy
    decode = strategy.decode_response_fast

    def lean(message):
        if message["protocolOp"] != 4 or message["controls"]:
            return decode(message)
        payload = message["payload"]
        raw_dn = payload[0][3]
        return {
            "type": "searchResEntry",
            "raw_dn": raw_dn,
            "dn": bytes(raw_dn).decode("utf-8", "replace"),
            "raw_attributes": {bytes(a[3][0][3]).decode("utf-8", "replace"): [bytes(v[3]) for v in a[3][1][3]]
                               for a in payload[1][3]},
            "attributes": {},
        }

    strategy.decode_response_fast = lean


def _bind(settings: LdapSettings, secure: bool) -> ldap3.Connection:
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
        read_only=True,
        raise_exceptions=True,
        receive_timeout=settings.receive_timeout,
        auto_referrals=False,
        check_names=False,
    )
    _lean_entries(conn)
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
    elif "self-signed" in lowered or "self signed" in lowered:
        cause = f"the certificate is self-signed and not in {bundle}; add it (or its CA) there"
    elif "unable to get local issuer" in lowered or "unknown ca" in lowered:
        cause = f"the certificate's issuer is not in {bundle} (untrusted CA)"
    else:
        cause = "untrusted or wrong certificate?"
    return f"{cause} — {_reason(Exception(text))}"


def _reason(exc: Exception) -> str:
    """ldap3 wraps socket errors in nested tuples; keep the readable part, shortened."""
    text = re.sub(r"^[(\"', ]+|[)\"', ]+$", "", str(exc))
    return text if len(text) < 400 else text[:400] + "…"
