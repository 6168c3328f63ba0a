"""Generated AD-like users, as LDIF for slapadd and as ldap3 attribute dicts for live adds."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

BASE_DN = "DC=example,DC=test"
USERS_DN = f"CN=Users,{BASE_DN}"
EMPTY_OU_DN = f"OU=Empty,{BASE_DN}"  # exists, holds nobody: the "successful but empty search" incident
DEPARTMENTS = ["Sales", "Support", "Engineering", "Finance", "Marketing", "Operations", "Legal", "HR"]
FIRST = ["John", "Anna", "Marco", "Giulia", "Peter", "Maria", "Luca", "Sara", "Tom", "Elena", "Paolo", "Chiara"]
LAST = ["Smith", "Rossi", "Bianchi", "Brown", "Ferrari", "Jones", "Russo", "Miller", "Gallo", "Costa"]


def ad_user(i: int, rng: random.Random | None = None) -> dict[str, object]:
    """Attributes of the i-th generated user: stable for a given i, so tests can predict them."""
    rng = rng or random.Random(i)
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    sam = f"user{i:06d}"
    ext = str(10000 + i)
    return {
        "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson", "user"],
        "cn": f"{first} {last} {i}",
        "sn": last,
        "givenName": first,
        "displayName": f"{first} {last}",
        "sAMAccountName": sam,
        "userPrincipalName": f"{sam}@example.test",
        "mail": f"{first.lower()}.{last.lower()}.{i}@example.test",
        "department": DEPARTMENTS[i % len(DEPARTMENTS)],
        "telephoneNumber": f"+39 0461 {ext}",
        "ipPhone": ext,
        "mobile": f"+39 333 {rng.randint(1000000, 9999999)}",
        "msRTCSIP-PrimaryUserAddress": f"sip:{ext}@example.test",
        "userAccountControl": "512",
        "objectGUID": uuid.UUID(int=rng.getrandbits(128)).bytes_le,
    }


def user_dn(attrs: dict[str, object]) -> str:
    return f"CN={attrs['cn']},{USERS_DN}"


def _ldif_lines(dn: str, attrs: dict[str, object]) -> Iterator[str]:
    import base64

    yield f"dn: {dn}"
    for name, value in attrs.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bytes):
                yield f"{name}:: {base64.b64encode(v).decode()}"
            else:
                yield f"{name}: {v}"
    yield ""


def base_ldif(service_password: str) -> str:
    """The suffix, the Users container and the service account the sync binds as."""
    entries = [
        (BASE_DN, {"objectClass": ["top", "domain"], "dc": "example"}),
        (USERS_DN, {"objectClass": ["top", "container"], "cn": "Users"}),
        (EMPTY_OU_DN, {"objectClass": ["top", "organizationalUnit"], "ou": "Empty"}),
        (f"CN=svc-usersync,{BASE_DN}", {"objectClass": ["top", "person"], "cn": "svc-usersync",
                                        "sn": "usersync", "userPassword": service_password}),
    ]
    return "\n".join(line for dn, a in entries for line in _ldif_lines(dn, a)) + "\n"


def users_ldif(count: int, start: int = 0) -> str:
    return "\n".join(
        line for i in range(start, start + count) for line in _ldif_lines(user_dn(ad_user(i)), ad_user(i))
    ) + "\n"
