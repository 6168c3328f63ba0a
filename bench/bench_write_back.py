"""Write-back at scale on the real Samba AD DC, through the DAG (``dag.test()``): N values written back in one run.

    .venv/bin/python -m bench.bench_write_back [N] [--out docs/benchmarks.md]

A private Samba AD DC (fixed ports 389/636: nothing else may hold them) with N accounts (default 10,000) in
``OU=Bench``, a private PostgreSQL users table, rules with ``extension: keep`` and ``write_back: {ipPhone:
extension}``. Runs: the first import; an admin assigns N extensions in the users table; the write-back run (N
values, one LDAP modify each); the next run (nothing to write: the reference for the rest of the run). In the same
session, the floor: ``ldapmodify`` (OpenLDAP's C client, one connection) making the same N one-value modifies
(of ``pager``, which no rule reads) from an LDIF file over LDAPS.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.bench_dag import publish
from bench.dag_session import runner_session
from devtools.samba import BASE_DN, SambaDc

OU = f"OU=Bench,{BASE_DN}"


def rules(n: int) -> dict[str, Any]:
    return {
        "source": {"name": "bench", "type": "active_directory", "conn_id": "bench_ldap", "object_path": OU,
                   "filter": "(&(objectCategory=person)(objectClass=user))", "domain": "EXAMPLE", "partitions": 1},
        "schedule": {"auto": False},
        "run": {"retries": 0},
        "target": {"conn_id": "bench_target"},
        "fields": {
            "username": {"policy": "import", "attribute": "sAMAccountName", "transforms": ["lower"]},
            "first_name": {"policy": "import", "attribute": "givenName"},
            "last_name": {"policy": "import", "attribute": "sn"},
            "extension": "keep",
        },
        "write_back": {"attributes": {"ipPhone": "extension"}, "max_writes": n},
    }


def load(dc: SambaDc, n: int) -> list[str]:
    """N accounts in OU=Bench over one connection (Samba adds at some tens to hundreds a second)."""
    started = time.perf_counter()
    dns = []
    with dc.connect() as conn:
        conn.add(OU, ["top", "organizationalUnit"], {"ou": "Bench"})
        for i in range(n):
            dn = f"CN=bench{i:06d},{OU}"
            conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                     {"sAMAccountName": f"bench{i:06d}", "givenName": "Bench", "sn": f"User {i}",
                      "userAccountControl": "512"})
            dns.append(dn)
            if i and i % 1000 == 0:
                print(f"loaded {i:,} accounts ({i / (time.perf_counter() - started):.0f}/s)", file=sys.stderr)
    return dns


def floor(dc: SambaDc, dns: list[str], work: Path) -> float:
    """Seconds ``ldapmodify`` takes for the same number of one-value modifies over LDAPS."""
    ldif = work / "floor.ldif"
    ldif.write_text("".join(f"dn: {dn}\nchangetype: modify\nreplace: pager\npager: {7000 + i}\n-\n\n"
                            for i, dn in enumerate(dns)))
    started = time.perf_counter()
    subprocess.run(["ldapmodify", "-H", f"ldaps://127.0.0.1:{dc.ldaps_port}", "-x", "-D", dc.admin, "-w",
                    dc.admin_password, "-f", str(ldif)], check=True, capture_output=True,
                   env={**os.environ, "LDAPTLS_CACERT": str(dc.certs.ca)})
    return time.perf_counter() - started


def run_benchmark(n: int, work: Path | None = None, dc: SambaDc | None = None) -> dict[str, Any]:
    """``dc``: a running DC to use (the smoke test's); else one is started for the benchmark and stopped after."""
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-write-back-"))
    own = dc is None
    dc = dc or SambaDc(work / "samba").start()
    rows: list[dict] = []
    try:
        started = time.perf_counter()
        dns = load(dc, n)
        loading = time.perf_counter() - started
        with runner_session(work, rules(n), "write_back", rows, dc) as session:
            session.run("first import")
            engine = create_engine(session.target_url)
            with engine.begin() as conn:  # the admin assigns every extension in the application
                conn.execute(text("UPDATE users SET extension = CAST(10000 + id AS TEXT)"))
            engine.dispose()
            session.run(f"{n:,} values written back")
            session.run("next run: nothing to write")
        return {"rows": rows, "floor": floor(dc, dns, work), "loading": loading}
    finally:
        if own:
            dc.stop()


def markdown(n: int, result: dict[str, Any], command: str) -> str:
    rows, floor_s = result["rows"], result["floor"]
    lines = [
        f"## Write-back: {n:,} values to the Samba AD DC — measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; Samba 4 AD DC and PostgreSQL private on loopback, "
        f"one run of `{command}` (dag.test(); LDAPS; one attribute, `ipPhone`, per account). Loading the {n:,} "
        f"accounts took {result['loading']:.0f} s.",
        "",
        "| case | wall s | extract s | plan_write_back s | write_back s | values written | writes/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tasks, done = r.get("tasks", {}), r.get("write_back") or {}
        written = done.get("written", 0)
        seconds = tasks.get("write_back", 0.0)
        rate = f"{written / seconds:,.0f}" if written and seconds else "—"
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {tasks.get('extract', '—')} | "
                     f"{tasks.get('plan_write_back', '—')} | {tasks.get('write_back', '—')} | {written:,} | {rate} |")
    lines.append(f"| floor: `ldapmodify` (C), {n:,} one-value modifies, one connection | {floor_s:.2f} | | | | "
                 f"{n:,} | {n / floor_s:,.0f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    result = run_benchmark(args.n)
    publish(markdown(args.n, result, " ".join(["python -m bench.bench_write_back", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
