"""A benchmark's private world: a slapd with N AD-like users, a PostgreSQL users database, and a ``dag_runner``
process with its own Airflow home whose rules folder holds one source, ``bench``. Shared by the benchmarks that
run a sequence of DAG runs against one directory and read each run's figures."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.dag_runner import admin_env
from devtools.postgres import PostgresServer
from devtools.slapd import SlapdServer

REPO = Path(__file__).resolve().parents[1]
DAG = "user_sync__bench"


class Session:
    def __init__(self, ldap: Any, proc: subprocess.Popen, rows: list[dict[str, Any]], target_url: str = ""):
        self.ldap, self.proc, self.rows, self.target_url = ldap, proc, rows, target_url

    def run(self, case: str, conf: dict | None = None, run_after: str | None = None,
            user_log: bool = True) -> dict[str, Any]:
        """One DAG run; its figures are appended to ``rows`` under ``case``. A failed run ends the benchmark.
        ``user_log=False``: the run leaves out the per-user log's writes (the reference of its cost)."""
        self.proc.stdin.write(json.dumps({"run": DAG, "conf": conf or {}, "run_after": run_after,
                                          "user_log": user_log}) + "\n")
        self.proc.stdin.flush()
        result = json.loads(self.proc.stdout.readline())
        if result["state"] != "success":
            raise SystemExit(f"{case} failed: {result}")
        self.rows.append({"case": case, **result})
        return result


@contextmanager
def dag_session(work: Path, n: int, rules: dict[str, Any], database: str, rows: list[dict[str, Any]]) -> Iterator[Session]:
    """A slapd with ``n`` AD-like users behind the ``bench_ldap`` connection."""
    ldap = SlapdServer(work / "ldap", users=n).start()
    try:
        with runner_session(work, rules, database, rows, ldap) as session:
            yield session
    finally:
        ldap.stop()


@contextmanager
def runner_session(work: Path, rules: dict[str, Any], database: str, rows: list[dict[str, Any]],
                   directory: Any, conn_id: str = "bench_ldap") -> Iterator[Session]:
    """A private PostgreSQL users database and a ``dag_runner`` process for ``rules``, reading ``directory`` (a
    running slapd, Samba DC or SCIM server: its ``connection_extra()`` is the connection ``conn_id``)."""
    pg = PostgresServer(work / "pg").start()
    try:
        home = work / "home"
        rules_dir = home / "rules"
        rules_dir.mkdir(parents=True)
        (rules_dir / "bench.yaml").write_text(yaml.safe_dump(rules))
        env = admin_env(home, rules_dir, {conn_id: directory.connection_extra()})
        pg.create_database(database)
        env["AIRFLOW_CONN_BENCH_TARGET"] = json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": "postgres", "schema": database})
        proc = subprocess.Popen([sys.executable, "-m", "bench.dag_runner", str(REPO / "dags")], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert json.loads(proc.stdout.readline())["ready"]
            yield Session(directory, proc, rows, pg.url(database))
        finally:
            proc.stdin.close()
            proc.wait(60)
    finally:
        pg.stop()


def written(counts: dict | None) -> str:
    """A run's written counts as a table cell: ``inserted 5, updated 2``, or a dash."""
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items() if v) or "—"


def task_table(rows: list[dict[str, Any]], first: str = "run") -> list[str]:
    """Markdown table lines of DAG runs: wall and diff / apply task seconds, rows written, XCom bytes."""
    lines = [f"| {first} | wall s | diff task s | apply task s | rows written | XCom bytes |",
             "|---|---:|---:|---:|---|---:|"]
    for r in rows:
        tasks = r.get("tasks", {})
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {tasks.get('diff', '—')} | {tasks.get('apply', '—')} | "
                     f"{written(r.get('written'))} | {r.get('xcom_bytes', '—')} |")
    return lines


def dag_section(title: str, command: str, reference: str, rows: list[dict[str, Any]], first: str) -> str:
    """A DAG benchmark's Markdown section: its title and when it was measured, the machine, the command and where
    its reference ran (``reference``), then the table of its runs."""
    return "\n".join([
        f"## {title} — measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; slapd and PostgreSQL private on loopback, one run "
        f"of `{command}` (dag.test(); {reference}, in the same session).",
        "",
        *task_table(rows, first),
        "",
    ])


def bench_main(doc: str | None, module: str, default_n: int, run: Callable[[int], list[dict[str, Any]]],
               markdown: Callable[[int, list[dict[str, Any]], str], str]) -> None:
    """A DAG benchmark's command line: ``python -m <module> [N] [--out FILE]``."""
    from bench.bench_dag import publish

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=default_n)
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    rows = run(args.n)
    publish(markdown(args.n, rows, " ".join([f"python -m {module}", *sys.argv[1:]])), args.out)
