"""Writes the LDIF the compose file's OpenLDAP container loads on its first start: the Users container, the
service account usersync binds as, and the 1,000 AD-like demo users of ``make demo`` (devtools.ad_data).

    python -m devtools.compose.seed_directory OUT.ldif [BIND_PASSWORD]

The suffix ``DC=example,DC=test`` itself is created by the container (``LDAP_DOMAIN=example.test``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from devtools import ad_data

USERS = 1000


def seed(password: str, users: int = USERS) -> str:
    base = ad_data.base_ldif(password).split("\n\n", 1)[1]  # everything but the suffix entry
    return base + "\n" + ad_data.users_ldif(users)


def main() -> None:
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(seed(sys.argv[2] if len(sys.argv) > 2 else "svc-Passw0rd!"))
    print(f"wrote {out}: {USERS} demo users")


if __name__ == "__main__":
    main()
