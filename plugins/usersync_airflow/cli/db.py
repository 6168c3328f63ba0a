"""``usersync-db``: the users database of an Airflow connection — its schema (the command ``check_source`` names)
and keeping synced users as local users.

    usersync-db status  [CONN_ID]   schema revision of the connection's database (default usersync_target)
    usersync-db upgrade [CONN_ID]   migrate it to the newest schema, keeping every row
    usersync-db detach  USER … [--conn CONN_ID] [--source NAME] [--file LIST] [--by WHO]
                                    turn synced users into local users (AD username, Domain, owner,
                                    disabled_by_sync and left_at cleared; every other value kept)
    usersync-db test-search RULES_FILE [--samples N]
                                    run the rules' search through its Airflow connection: the count and
                                    the first entries as the rules map them (writes nothing; exit 1 when
                                    the search fails or finds nobody)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from usersync.run.detach import detach_users
from usersync.run.report import RunReport
from usersync.store import schema_version
from usersync_airflow.hooks.users_db import UsersDbHook


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["detach"]:
        return detach(argv[1:])
    if argv[:1] == ["test-search"]:
        return test_search(argv[1:])
    parser = argparse.ArgumentParser(prog="usersync-db", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("status", "upgrade", "detach", "test-search"))
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


def test_search(argv: list[str]) -> int:
    """The rules' search, as a run makes it, through the rules' own connection (and secrets backend)."""
    import logging

    from usersync.rules import RulesError, load_rules
    from usersync.run.search_test import search_test
    from usersync.sources.errors import SourceError
    from usersync_airflow.hooks.connections import open_source

    parser = argparse.ArgumentParser(prog="usersync-db test-search",
                                     description="run a rules file's search: count and sample entries, mapped")
    parser.add_argument("rules", help="the rules file (include/rules/<source>.yaml)")
    parser.add_argument("--samples", type=int, default=3, help="entries shown with their mapped values")
    args = parser.parse_args(argv)
    try:
        rules = load_rules(args.rules)
        with open_source(rules, {}) as source:
            result = search_test(source, rules, samples=args.samples, log=logging.getLogger("usersync.search"))
    except (RulesError, SourceError) as exc:
        print(f"{args.rules}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(result.lines()))
    return 0 if result.ok else 1


def detach(argv: list[str]) -> int:
    """Detach the named users (each owning source's change set applied in one transaction), then write one
    report per source into the reports page's history, as a run of that source's DAG."""
    parser = argparse.ArgumentParser(prog="usersync-db detach",
                                     description="turn synced users into local users, keeping every other value")
    parser.add_argument("users", nargs="*", help="username, AD username, DOMAIN\\AD username or anchor")
    parser.add_argument("--file", help="a file with one user per line (# comments allowed)")
    parser.add_argument("--conn", default=UsersDbHook.default_conn_name, help="the users database's connection id")
    parser.add_argument("--source", help="only users owned by this source")
    parser.add_argument("--by", default=os.environ.get("USER") or "an admin", help="who asks (for the report)")
    args = parser.parse_args(argv)
    names = list(args.users)
    if args.file:
        names += [line.split("#")[0].strip() for line in Path(args.file).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        parser.error("name at least one user (or --file)")
    hook = UsersDbHook(args.conn)
    try:
        done = detach_users(hook.get_conn(), names, args.by, args.source, reported=_record)
    finally:
        hook.close()
    if done.unknown:
        print(f"no user found for: {', '.join(done.unknown)}; nothing was detached", file=sys.stderr)
        return 2
    for name in done.local:
        print(f"{name}: already a local user, nothing to do")
    for source, rows in done.by_source.items():
        for row in rows:
            print(f"{row['username']} ({row['domain']}\\{row['ad_username']}): detached from source {source}; "
                  "now a local user")
    return 0


def _record(source: str, report: RunReport) -> None:
    """The report of a detach from the command line, listed on the reports page with the source's runs."""
    from usersync.run.summaries import write_run_record
    from usersync_airflow.dag.run_storage import run_folder

    dag = _dag_of(source)
    folder = run_folder(dag, report.run_id)
    folder.write_manifest(source=source, run_id=report.run_id, dry_run=False)
    write_run_record(folder, {**report.summary(), "dag_id": dag, "kind": "detach", "plan": None}, report.render())


def _dag_of(source: str) -> str:
    """The DAG of ``source`` (its rules file names it); its history holds the detach's report."""
    from usersync.rules import load_rules_dir
    from usersync_airflow.dag.dag_factory import DAG_PREFIX, dag_id, rules_dir

    valid, _errors = load_rules_dir(rules_dir())
    return dag_id(valid[source][0]) if source in valid else f"{DAG_PREFIX}{source}"


if __name__ == "__main__":
    sys.exit(main())
