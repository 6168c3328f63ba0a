"""Benchmark: one full sync of N AD-like users (default 100,000) through the domain pipeline, without Airflow.

    .venv/bin/python -m bench.bench_sync [N]

Starts a private slapd (loaded offline with slapadd) and a private PostgreSQL, then times each step: extract
(ldap3 paged search), map, diff, apply — for a first import, a run with nothing changed, and a run with 2% of
the users changed. Figures go in the closing notes, not in tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import ldap3
from sqlalchemy import create_engine

from devtools.ad_data import ad_user, user_dn
from devtools.postgres import PostgresServer
from devtools.slapd import SERVICE_DN, SlapdServer
from tests.support.rules import ad_rules
from tests.support.small_runs import apply_changes, compute_diff
from usersync.plan.mapping import map_records
from usersync.rules import parse_rules
from usersync.sources.ldap.directory import LdapSettings
from usersync.sources.ldap.reader import LdapSource
from usersync.store.apply import load_users


def timed(label, fn, results):
    t = time.perf_counter()
    out = fn()
    results.append((label, time.perf_counter() - t))
    return out


def one_run(name, source, rules, engine, results):
    info = source.check()
    records = timed(f"{name}: extract", lambda: list(source.records(info)), results)
    mapped, skipped = timed(f"{name}: map", lambda: map_records(rules, records), results)
    existing = timed(f"{name}: load users", lambda: load_users(engine), results)
    plan = timed(f"{name}: diff", lambda: compute_diff(rules, mapped, existing, skipped, len(records)), results)
    written = timed(f"{name}: apply", lambda: apply_changes(engine, plan), results)
    return written


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="usersync-bench-"))
    t = time.perf_counter()
    ldap = SlapdServer(work / "ldap", users=n).start()
    print(f"slapd with {n:,} users ready in {time.perf_counter() - t:.1f} s")
    pg = PostgresServer(work / "pg").start()
    data = ad_rules()
    data["source"]["page_size"] = 1000
    data["safety"] = {"max_deletes": n, "max_delete_percent": 100}
    rules = parse_rules(data)
    settings = LdapSettings("127.0.0.1", SERVICE_DN, ldap.service_password, ldaps_port=ldap.tls_port,
                            ldap_port=ldap.port, ca_certs_file=str(ldap.certs.ca))
    try:
        for backend, url in (("postgresql", pg.create_database("bench")), ("sqlite", f"sqlite:///{work / 'users.db'}")):
            engine = create_engine(url)
            results: list[tuple[str, float]] = []
            with LdapSource(rules.source, settings, rules.source_attributes()) as source:
                print(f"\n[{backend}] first import:", one_run("import", source, rules, engine, results))
                print(f"[{backend}] nothing changed:", one_run("no-op", source, rules, engine, results))
                churn = max(1, n // 50)  # change 2% of the directory (a new value per backend)
                with ldap.admin() as conn:
                    for i in range(churn):
                        conn.modify(user_dn(ad_user(i)), {"department": [(ldap3.MODIFY_REPLACE, [f"Churned {backend}"])]})
                print(f"[{backend}] 2% changed:", one_run("churn", source, rules, engine, results))
            for label, seconds in results:
                print(f"  {label:<22} {seconds:7.2f} s")
            engine.dispose()
    finally:
        ldap.stop()
        pg.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
