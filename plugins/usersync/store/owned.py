"""The users one source owns, with the columns a step needs: what write-back plans from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from usersync.core.users_table import users

IDENTITY = ("id", "username", "ad_username", "domain", "external_id")


def owned_users(engine: Engine, source: str, columns: list[str]) -> list[dict[str, Any]]:
    """Every user ``source`` owns: its identity columns and ``columns``, as dicts."""
    wanted = [users.c[name] for name in dict.fromkeys([*IDENTITY, *columns])]
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(*wanted).where(users.c.source == source)).mappings()]


def owned_count(engine: Engine, source: str) -> int:
    """How many users ``source`` owns (with a sync key, as the diff counts them): what the guard's share is of."""
    keyed = (func.coalesce(users.c.ad_username, "") != "") & (func.coalesce(users.c.domain, "") != "")
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(users).where((users.c.source == source) & keyed))
                   .scalar_one())
