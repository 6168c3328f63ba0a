"""``usersync-db``: the users database schema of an Airflow connection (the command ``check_source`` names).

    usersync-db status  [CONN_ID]   schema revision of the connection's database (default usersync_target)
    usersync-db upgrade [CONN_ID]   migrate it to the newest schema, keeping every row
"""

from __future__ import annotations

import argparse
import sys

from usersync.store import schema_version
from usersync_airflow.hooks.users_db import UsersDbHook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usersync-db", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("status", "upgrade"))
    parser.add_argument("conn_id", nargs="?", default=UsersDbHook.default_conn_name)
    args = parser.parse_args(argv)
    hook = UsersDbHook(args.conn_id)
    if args.action == "upgrade":
        before, after = hook.upgrade()
        print(f"{args.conn_id}: users database upgraded: {before or '(unversioned)'} -> {after}")
        return 0
    from sqlalchemy import create_engine

    engine = create_engine(hook.sqlalchemy_url())
    try:
        at = schema_version.current(engine)
    finally:
        engine.dispose()
    print(f"{args.conn_id}: schema revision {at or '(none)'}; this usersync writes {schema_version.head()}")
    return 0 if at == schema_version.head() else 1


if __name__ == "__main__":
    sys.exit(main())
