"""`usersync` command line: check rules files and manage the users database without Airflow.

    usersync rules validate FILE...   exit 0 when every file is valid, 1 otherwise (errors on stderr)
    usersync rules fields             the capability matrix: which choices each field allows
    usersync db status --url URL      the database's schema revision and this code's newest
    usersync db upgrade --url URL     migrate the users database to the newest schema, keeping every row
(With Airflow, ``usersync-db upgrade [CONN_ID]`` does the same for a connection.)
"""

from __future__ import annotations

import argparse
import sys

from usersync.rules import RulesError, load_rules
from usersync.rules.fields import capability_matrix


def _validate(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        try:
            rules = load_rules(path)
        except RulesError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        sched = rules.schedule
        when = f"daily {sched.hour:02d}:{sched.minute:02d} {sched.timezone}" if sched.auto else "manual"
        print(f"{path}: ok — source {rules.source.name} ({rules.source.type}), {when}, "
              f"reads {', '.join(rules.source_attributes())}")
    return 1 if failed else 0


def _fields() -> int:
    rows = capability_matrix()
    width = max(len(r[0]) for r in rows)
    for name, kind, policies, constants in rows:
        note = "" if constants else "  (no fixed values)"
        print(f"{name:<{width}}  {kind:<6}  {', '.join(policies)}{note}")
    return 0


def _db(action: str, url: str) -> int:
    from sqlalchemy import create_engine

    from usersync.store import schema_version

    engine = create_engine(url)
    try:
        if action == "status":
            at = schema_version.current(engine)
            print(f"schema revision {at or '(none)'}; this usersync writes {schema_version.head()}")
            return 0 if at == schema_version.head() else 1
        before, after = schema_version.upgrade(engine)
        print(f"users database upgraded: {before or '(unversioned)'} -> {after}")
        return 0
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usersync", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="area", required=True)
    rules = sub.add_parser("rules", help="rules files").add_subparsers(dest="action", required=True)
    validate = rules.add_parser("validate", help="check rules files")
    validate.add_argument("files", nargs="+")
    rules.add_parser("fields", help="which choices each field allows")
    db = sub.add_parser("db", help="the users database schema").add_subparsers(dest="action", required=True)
    for action, text in (("status", "show the schema revision"), ("upgrade", "migrate to the newest schema")):
        db.add_parser(action, help=text).add_argument("--url", required=True, help="SQLAlchemy URL of the users database")
    args = parser.parse_args(argv)
    if args.area == "db":
        return _db(args.action, args.url)
    if args.action == "validate":
        return _validate(args.files)
    return _fields()


if __name__ == "__main__":
    sys.exit(main())
