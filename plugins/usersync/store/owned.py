"""The users one source owns, with the columns a step needs: what write-back plans from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from usersync.store.schema import users

IDENTITY = ("id", "username", "ad_username", "domain", "external_id")


def owned_users(engine: Engine, source: str, columns: list[str]) -> list[dict[str, Any]]:
    """Every user ``source`` owns: its identity columns and ``columns``, as dicts."""
    wanted = [users.c[name] for name in dict.fromkeys([*IDENTITY, *columns])]
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(*wanted).where(users.c.source == source)).mappings()]
