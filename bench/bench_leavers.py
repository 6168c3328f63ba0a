"""Leavers at scale, through the DAG (``dag.test()``): what a grace period and protection rules cost a daily run.

    .venv/bin/python -m bench.bench_leavers [N] [--leavers K] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 100,000) and one private PostgreSQL; rules with ``deletion:
disable``, ``delete_after_days: 30`` and two ``protect:`` entries. Runs, dated as daily runs: the first import;
the reference, a no-op run with nobody pending; then K accounts (default 2,000) leave (deleted online from
slapd) — one run disables them; a no-op run with K users pending deletion (against the reference: the cost of
carrying them); the run 30 days later that deletes them (K deletions, guarded like any).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.bench_dag import FULL_FIELDS, publish, rules
from bench.dag_session import dag_session, written
from devtools.ad_data import ad_user, user_dn

DAY0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def run_benchmark(n: int, leavers: int, work: Path | None = None) -> list[dict]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-leavers-"))
    data = rules("bench", n, FULL_FIELDS)
    data["safety"].update(deletion="disable", delete_after_days=30)
    data["protect"] = [{"field": "department", "in": ["Board"]}, {"field": "extension", "range": [9000, 9099]}]
    rows: list[dict] = []
    with dag_session(work, n, data, "leavers", rows) as session:
        def run(case: str, day: int) -> None:
            session.run(case, run_after=(DAY0 + timedelta(days=day)).isoformat())

        run("first import", 0)
        run("reference: no-op, nobody pending", 1)
        step = max(n // leavers, 1)
        with session.ldap.admin() as conn:
            for i in range(0, step * leavers, step):
                conn.delete(user_dn(ad_user(i)))
        run(f"{leavers:,} leave: disabled", 2)
        run(f"no-op, {leavers:,} pending deletion", 3)
        run(f"30 days on: {leavers:,} deleted", 32)
    return rows


def markdown(n: int, leavers: int, rows: list[dict], command: str) -> str:
    lines = [
        f"## Leavers: grace period at {n:,} users, {leavers:,} leaving — measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; slapd and PostgreSQL private on loopback, one run "
        f"of `{command}` (dag.test(), runs dated a day apart; `deletion: disable`, `delete_after_days: 30`, two "
        "`protect:` entries).",
        "",
        "| case | wall s | diff task s | apply task s | rows written |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        tasks = r.get("tasks", {})
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {tasks.get('diff', '—')} | {tasks.get('apply', '—')} | "
                     f"{written(r.get('written'))} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--leavers", type=int, default=2_000)
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    rows = run_benchmark(args.n, args.leavers)
    publish(markdown(args.n, args.leavers, rows, " ".join(["python -m bench.bench_leavers", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
