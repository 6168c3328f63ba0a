"""What the per-user log costs a run, through the DAG (``dag.test()``), and how fast one user's history is found.

    .venv/bin/python -m bench.bench_user_log [N] [--log-records M] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 100,000) and one private PostgreSQL. Each case runs twice in the
same session, once with the log and once without its writes (the reference), in alternating order: the first
import (the table emptied between the two), a 1 % churn run (a different 1 % each time) and a no-op. Then the log
is grown to M records (default 10,000,000) with one ``INSERT … SELECT`` over ``generate_series`` and the users
table — M / N records for each of the N users, spread over actions and two years — and one user's timeline is searched by
username, by ``DOMAIN\\user`` and by anchor, 25 times each (the median and the slowest are reported).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from bench.bench_dag import FULL_FIELDS, publish, rules
from bench.dag_session import dag_session, written
from devtools.ad_data import ad_user, user_dn
from usersync.core.users_table import user_events
from usersync.store.schema_version import ensure_schema

DAY0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def _records(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(user_events)).scalar_one()


def _churn(ldap, n: int, offset: int, tag: str) -> None:
    """1 % of the users get a new department (every 100th, starting at ``offset``)."""
    import ldap3

    with ldap.admin() as conn:
        for i in range(offset, n, 100):
            conn.modify(user_dn(ad_user(i)), {"department": [(ldap3.MODIFY_REPLACE, [tag])]})


def run_benchmark(n: int, log_records: int, work: Path | None = None) -> tuple[list[dict], list[dict]]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-log-"))
    data = rules("bench", n, FULL_FIELDS)
    data["safety"].update(max_delete_percent=100, max_deletes=n)
    rows: list[dict] = []
    searches: list[dict] = []
    with dag_session(work, n, data, "userlog", rows) as session:
        engine = create_engine(session.target_url)
        day = 0

        def run(case: str, logged: bool) -> None:
            nonlocal day
            before = _records(engine)
            started = time.perf_counter()
            session.run(case, run_after=(DAY0 + timedelta(days=day)).isoformat(), user_log=logged)
            rows[-1].update(logged=logged, records=_records(engine) - before,
                            measured=round(time.perf_counter() - started, 2))
            day += 1

        def empty() -> None:
            ensure_schema(engine)
            with engine.begin() as c:
                c.execute(text("TRUNCATE users, user_events, source_state RESTART IDENTITY"))

        for logged in (False, True, False, True):
            empty()
            run("first import", logged)
        for k, logged in enumerate((False, True, False, True)):
            _churn(session.ldap, n, k + 1, f"Churn {k}")
            run("1 % churn", logged)
        for logged in (False, True, False, True):
            run("no-op", logged)
        searches = _search(engine, n, log_records)
        engine.dispose()
    return rows, searches


def _search(engine, n: int, total: int) -> list[dict]:
    """Grow the log to ``total`` records, then time one user's timeline by each kind of name."""
    from usersync.store.history import timeline

    have = _records(engine)
    per_user = max((total - have) // n, 1)
    started = time.perf_counter()
    with engine.begin() as c:  # each user's k-th record: a run k × 7 hours after two years ago, actions in turn
        c.execute(text(f"""
            INSERT INTO user_events (at, seen, run_id, source, rules_hash, action, user_id, username, ad_username,
                                     domain, external_id, detail, open)
            SELECT timestamptz '{(DAY0 - timedelta(days=730)).isoformat()}' + (k * interval '7 hours'), 1,
                   'scheduled__' || k, 'bench', repeat('a', 64),
                   (ARRAY['updated','updated','updated','skipped','disabled','returned'])[1 + (u.id + k) % 6],
                   u.id, u.username, u.ad_username, u.domain, u.external_id,
                   '{{"changes": {{"department": ["Sales", "R&D"]}}}}', false
            FROM generate_series(1, {per_user}) AS k CROSS JOIN users AS u"""))
        c.execute(text("ANALYZE user_events"))
    built = time.perf_counter() - started
    records = _records(engine)
    out = []
    target = n // 2
    with engine.connect() as c:
        user = c.execute(text("SELECT username, ad_username, domain, external_id FROM users WHERE username = :u"),
                         {"u": f"user{target:06d}"}).one()
    for label, query in (("username", user.username), ("DOMAIN\\user", f"{user.domain}\\{user.ad_username}"),
                         ("anchor", user.external_id)):
        timings, found = [], 0
        for _ in range(25):
            t = time.perf_counter()
            found = len(timeline(engine, query))
            timings.append((time.perf_counter() - t) * 1000)
        out.append({"by": label, "records": records, "found": found, "median_ms": statistics.median(timings),
                    "max_ms": max(timings), "built_s": built, "per_user": per_user})
    return out


def markdown(n: int, rows: list[dict], searches: list[dict], command: str) -> str:
    lines = [
        f"## Per-user log: its cost at {n:,} users, and one user's history in {searches[0]['records']:,} records — "
        f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; slapd and PostgreSQL private on loopback, one run "
        f"of `{command}` (dag.test(); each case with the log and without its writes — the reference — in turn, "
        "twice).",
        "",
        "| case | log | wall s | apply task s | rows written | log records added | XCom bytes |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {'yes' if r['logged'] else 'no (reference)'} | {r['seconds']:.2f} | "
                     f"{r.get('tasks', {}).get('apply', '—')} | {written(r.get('written'))} | {r['records']:,} | "
                     f"{r.get('xcom_bytes', '—')} |")
    lines += ["", "| case | wall s without the log (mean) | with it (mean) | cost |", "|---|---:|---:|---:|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        without = statistics.mean(r["seconds"] for r in rows if r["case"] == case and not r["logged"])
        with_log = statistics.mean(r["seconds"] for r in rows if r["case"] == case and r["logged"])
        lines.append(f"| {case} | {without:.2f} | {with_log:.2f} | {100 * (with_log - without) / without:+.1f} % |")
    s = searches[0]
    lines += ["", f"History search (`usersync.store.history.timeline`, the query the history page and API run) in a "
                  f"log of {s['records']:,} records ({s['per_user']} per user for {n:,} users, built with one "
                  f"`INSERT … SELECT` over `generate_series` in {s['built_s']:.0f} s):", "",
              "| by | records found | median ms | slowest ms (of 25) |", "|---|---:|---:|---:|"]
    for s in searches:
        lines.append(f"| {s['by']} | {s['found']} | {s['median_ms']:.1f} | {s['max_ms']:.1f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--log-records", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    rows, searches = run_benchmark(args.n, args.log_records)
    publish(markdown(args.n, rows, searches, " ".join(["python -m bench.bench_user_log", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
