"""One account on demand against a large directory, through the DAG (``dag.test()``), beside a full run and
beside one bare LDAP search of that account, all in the same run.

    .venv/bin/python -m bench.bench_one_account [N] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 100,000) and one private PostgreSQL. Runs, in order: the first
full import; a full no-op run; then one user changed and ``account=<its sAMAccountName>`` (the single-account
run); and the reference: the same equality search with ldap3 on a fresh LDAPS connection (bind + search), the
least a single-account read can cost. Counted per run: records in the run's records file (the extract task's
XCom) and, for the single-account run, the requests and entries the reader itself counted as the server
answered (its explanation's first line).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_dag import FULL_FIELDS, publish, rules
from bench.dag_session import dag_session, written
from devtools.ad_data import ad_user, user_dn
from devtools.slapd import SlapdServer

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = 4242


def bare_search(ldap: SlapdServer, sam: str) -> tuple[float, int]:
    """Seconds for bind + one equality search of ``sam`` over LDAPS with ldap3, and entries returned."""
    import ssl

    import ldap3

    t = time.perf_counter()
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ldap.certs.ca))
    server = ldap3.Server("127.0.0.1", port=ldap.tls_port, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    extra = ldap.connection_extra()
    with ldap3.Connection(server, extra["login"], extra["password"], auto_bind=True) as conn:
        conn.search("DC=example,DC=test", f"(|(sAMAccountName={sam})(userPrincipalName={sam}))", ldap3.SUBTREE,
                    attributes=[a["attribute"] for a in FULL_FIELDS.values() if "attribute" in a])
        entries = len(conn.entries)
    return time.perf_counter() - t, entries


def run_benchmark(n: int, work: Path | None = None) -> list[dict]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-one-"))
    rows: list[dict] = []
    with dag_session(work, n, rules("bench", n, FULL_FIELDS), "one_account", rows) as session:
        session.run("full run, first import")
        session.run("full run, no-op")
        import ldap3

        one = min(ACCOUNT, n - 1)
        with session.ldap.admin() as conn:
            conn.modify(user_dn(ad_user(one)), {"department": [(ldap3.MODIFY_REPLACE, ["Bench one"])]})
        sam = f"user{one:06d}"
        result = session.run("one account, changed", {"account": sam})
        asked = re.search(r"(\d+) request\(s\), (\d+) entr", result["explanation"] or "")
        rows[-1]["reader"] = f"{asked[1]} request(s), {asked[2]} entry" if asked else "?"
        seconds, entries = bare_search(session.ldap, sam)
        rows.append({"case": "reference: ldap3 bind + one search", "seconds": round(seconds, 3),
                     "entries": entries, "tasks": {}, "written": None})
    return rows


def markdown(n: int, rows: list[dict], command: str) -> str:
    lines = [
        f"## One account on demand, {n:,} users — measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; slapd and PostgreSQL private on loopback, one run "
        f"of `{command}` (dag.test()).",
        "",
        "| case | wall s | extract task s | records read | reader's count | rows written |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        extract = r.get("tasks", {}).get("extract")
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {extract if extract is not None else '—'} | "
                     f"{r.get('entries', '—'):,} | {r.get('reader', '—')} | {written(r.get('written'))} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    rows = run_benchmark(args.n)
    publish(markdown(args.n, rows, " ".join(["python -m bench.bench_one_account", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
