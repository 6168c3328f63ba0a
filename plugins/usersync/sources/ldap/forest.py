"""Reading an Active Directory forest: the Global Catalog, and the domain each entry lives in.

A domain controller holds its own domain only; an object path in another domain of the forest ends in a
referral (Windows) or "no such object" (Samba). The **Global Catalog** (port 3268, or 3269 over TLS) holds every
domain of the forest in one tree — but only the attributes of the *partial attribute set* (schema flag
``isMemberOfPartialAttributeSet``): an attribute outside it reads as empty for every user, so a GC read refuses
to start when the rules use one.

``dnDomain`` is an attribute we compute for each entry: the NetBIOS name of the domain whose naming context the
entry's DN lies in, from the forest's partitions container (``crossRef`` objects: ``nCName`` → ``nETBIOSName``).
``domain_attribute: dnDomain`` gives every user the Domain of its own AD domain, as AD's ``DOMAIN\\user``.
"""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars

from usersync.sources.errors import SourceQueryError

GC_PORTS = (3268, 3269)
DN_DOMAIN = "dnDomain"  # computed per entry, never asked of the server


def computed(attributes: list[str]) -> list[str]:
    """The attributes we compute ourselves among ``attributes``."""
    return [a for a in attributes if a.lower() == DN_DOMAIN.lower()]


def domain_names(directory) -> dict[str, str]:
    """Naming context (lower case, no blanks) → NetBIOS name, for every domain of the forest."""
    dse = {k.lower(): v for k, v in directory.root_dse("configurationNamingContext").items()}
    config = (dse.get("configurationnamingcontext") or [None])[0]
    if not config:
        raise SourceQueryError(f"{directory.url} announces no configurationNamingContext: not Active Directory, so "
                               f"'{DN_DOMAIN}' cannot be worked out; set 'domain' in the rules instead")
    out = {}
    for ref in directory.search(f"CN=Partitions,{config}", "(&(objectClass=crossRef)(nETBIOSName=*))",
                                ["nCName", "nETBIOSName"], scope="level"):
        if ref.get("nCName") and ref.get("nETBIOSName"):
            out[_normal(ref.get("nCName"))] = ref.get("nETBIOSName")
    if not out:
        raise SourceQueryError(f"the partitions container CN=Partitions,{config} on {directory.url} names no domain "
                               "(may the bind account read the configuration partition?)")
    return out


def domain_of(dn: str, domains: dict[str, str]) -> str | None:
    """The NetBIOS name of the deepest domain whose naming context ``dn`` lies in; None if none does."""
    normal = _normal(dn)
    best = None
    for context, name in domains.items():
        if (normal == context or normal.endswith("," + context)) and (best is None or len(context) > len(best[0])):
            best = (context, name)
    return best[1] if best else None


def outside_partial_set(directory, attributes: list[str]) -> list[str]:
    """The attributes (as the rules name them) the Global Catalog does not carry; unknown names count too."""
    dse = {k.lower(): v for k, v in directory.root_dse("schemaNamingContext").items()}
    schema = (dse.get("schemanamingcontext") or [None])[0]
    if not schema:
        raise SourceQueryError(f"{directory.url} announces no schemaNamingContext: not a Global Catalog")
    carried = set()
    wanted = [a for a in attributes if a.lower() not in ("distinguishedname", "dn") and not computed([a])]
    for start in range(0, len(wanted), 20):
        names = "".join(f"(lDAPDisplayName={escape_filter_chars(a)})" for a in wanted[start:start + 20])
        for entry in directory.search(schema, f"(&(objectClass=attributeSchema)(|{names}))",
                                      ["lDAPDisplayName", "isMemberOfPartialAttributeSet", "systemFlags"],
                                      scope="level"):
            in_set = (entry.get("isMemberOfPartialAttributeSet") or "").upper() == "TRUE"
            if in_set or _always_in_gc(entry.get("lDAPDisplayName") or ""):
                carried.add((entry.get("lDAPDisplayName") or "").lower())
    return [a for a in wanted if a.lower() not in carried]


def _always_in_gc(name: str) -> bool:
    """Attributes every GC entry has whatever the schema flag says (the entry's identity)."""
    return name.lower() in {"objectguid", "objectclass", "distinguishedname"}


def outside_hint(base: str, own_context: str | None) -> str:
    """Why a search of ``base`` found nothing, when ``base`` lies outside this DC's own domain; '' otherwise."""
    if not own_context or not base or domain_of(base, {_normal(own_context): "own"}):
        return ""
    return (f"; it lies outside this domain controller's domain ({own_context}): a DC holds its own domain only. "
            "Read another domain through one of its own DCs, or the whole forest through the Global Catalog "
            "(ldaps_port 3269, or port 3268 with StartTLS), which holds every domain's users with the attributes "
            "of the forest's partial attribute set")


def _normal(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))
