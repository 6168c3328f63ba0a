"""Benchmark of a whole sync through the DAG, side by side with the floor and the peer, in one run.

    .venv/bin/python -m bench.bench_dag [N] [--no-peer] [--no-scheduler] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 100,000) and one private PostgreSQL serve every contestant:
- **floor**: OpenLDAP's C client ``ldapsearch`` (paged, LDAPS) of the same 12 attributes, then PostgreSQL
  ``COPY`` of the same rows — the least any tool must spend;
- **peer**: django-python3-ldap's ``ldap_sync_users`` (its Django settings: ``bench/peer_settings.py``), with
  its 4-field mapping, cold (empty table) and warm (nothing changed);
- **ours through the DAG**: ``user_sync__bench`` (12 attributes) with ``dag.test()`` and on the scheduler path
  (api-server + scheduler + dag-processor, LocalExecutor, triggered through the REST API — the only path where
  the partitioned ``extract`` tasks run in parallel): first import, no-op, 1% churn (0.5% new, 1% modified,
  0.5% removed); and ``user_sync__bench4`` with the peer's 4-field mapping.
Reported: wall time, rows written, XCom bytes per run, run-folder bytes, peak RSS. The table goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from devtools.ad_data import USERS_DN, ad_user, user_dn
from devtools.postgres import PostgresServer
from devtools.slapd import SERVICE_DN, SlapdServer

REPO = Path(__file__).resolve().parents[1]
ATTRIBUTES = ["sAMAccountName", "givenName", "sn", "mail", "department", "msRTCSIP-PrimaryUserAddress", "ipPhone",
              "mobile", "telephoneNumber", "userPrincipalName", "userAccountControl", "objectGUID"]
PEER_FIELDS = {"username": "sAMAccountName", "first_name": "givenName", "last_name": "sn", "email": "mail"}


def rules(name: str, n: int, fields: dict, **source) -> dict:
    return {
        "source": {"name": name, "type": "active_directory", "conn_id": "bench_ldap", "object_path": USERS_DN,
                   "filter": "(objectClass=user)", "domain": "EXAMPLE", "page_size": 1000, **source},
        "target": {"conn_id": f"{name}_target"},
        "run": {"retries": 0},
        "safety": {"max_deletes": n, "max_delete_percent": 100},
        "fields": fields,
    }


FULL_FIELDS = {
    "username": {"policy": "import", "attribute": "sAMAccountName", "transforms": ["lower"]},
    "first_name": {"policy": "import", "attribute": "givenName"},
    "last_name": {"policy": "import", "attribute": "sn"},
    "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
    "department": {"policy": "import", "attribute": "department"},
    "extension": {"policy": "import", "attribute": "msRTCSIP-PrimaryUserAddress", "transforms": ["sip_user"]},
    "alias_extension": {"policy": "import", "attribute": "ipPhone"},
    "mobile": {"policy": "import", "attribute": "mobile", "transforms": ["digits"]},
    "fax_number": {"policy": "import", "attribute": "telephoneNumber", "transforms": ["digits"]},
    "personal_address": {"policy": "import", "attribute": "userPrincipalName"},
    "enabled": {"policy": "import", "attribute": "userAccountControl", "transforms": ["ad_enabled"]},
    "language": {"policy": "on_insert", "value": "en"},
}
FOUR_FIELDS = {field: {"policy": "import", "attribute": attr} for field, attr in PEER_FIELDS.items()}


class Bench:
    def __init__(self, n: int, work: Path):
        self.n, self.work = n, work
        self.rows: list[dict] = []
        self.churn_round = 0

    # --- servers ------------------------------------------------------------------------------------------
    def start(self) -> None:
        t = time.perf_counter()
        self.ldap = SlapdServer(self.work / "ldap", users=self.n).start()
        self.pg = PostgresServer(self.work / "pg").start()
        print(f"slapd with {self.n:,} users and PostgreSQL ready in {time.perf_counter() - t:.1f} s", flush=True)

    def stop(self) -> None:
        self.ldap.stop()
        self.pg.stop()

    def env(self, home: Path) -> dict[str, str]:
        """What an admin's environment holds: Airflow home, rules folder, connections."""
        rules_dir = home / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        for name, fields in (("bench", FULL_FIELDS), ("bench4", FOUR_FIELDS)):
            (rules_dir / f"{name}.yaml").write_text(yaml.safe_dump(rules(name, self.n, fields)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "USERSYNC"))}
        env.update({
            "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", "USERSYNC_HOME": str(home / "usersync"),
            "USERSYNC_RULES_DIR": str(rules_dir), "PYTHONPATH": str(REPO),
            "AIRFLOW_CONN_BENCH_LDAP": json.dumps(self.ldap.connection_extra()),
        })
        for name in ("bench", "bench4"):
            db = f"{home.name}_{name}".replace("-", "_")
            self.pg.create_database(db)
            env[f"AIRFLOW_CONN_{name.upper()}_TARGET"] = json.dumps(
                {"conn_type": "postgres", "host": "127.0.0.1", "port": self.pg.port, "login": "postgres", "schema": db})
        return env

    # --- the directory changes between runs ---------------------------------------------------------------
    def churn(self) -> dict[str, int]:
        """0.5% new, 1% modified, 0.5% removed — a different slice of users each round."""
        import ldap3

        self.churn_round += 1
        k = max(1, self.n // 200)
        base = self.n + 10 * k * self.churn_round
        start = 4 * k * self.churn_round
        with self.ldap.admin() as conn:
            for i in range(base, base + k):
                attrs = ad_user(i)
                conn.add(user_dn(attrs), attributes=attrs)
            for i in range(start, start + 2 * k):
                conn.modify(user_dn(ad_user(i)), {"department": [(ldap3.MODIFY_REPLACE, [f"Churn {self.churn_round}"])]})
            for i in range(start + 2 * k, start + 3 * k):
                conn.delete(user_dn(ad_user(i)))
        return {"inserted": k, "updated": 2 * k, "deleted": k}

    # --- the floor ----------------------------------------------------------------------------------------
    def floor(self) -> None:
        out = self.work / "floor.ldif"
        env = {**os.environ, "LDAPTLS_CACERT": str(self.ldap.certs.ca), "LDAPTLS_REQCERT": "demand"}
        cmd = ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", f"ldaps://127.0.0.1:{self.ldap.tls_port}",
               "-D", SERVICE_DN, "-w", self.ldap.service_password, "-b", USERS_DN, "-E", "pr=1000/noprompt",
               "(objectClass=user)", *ATTRIBUTES]
        t = time.perf_counter()
        with out.open("wb") as fh:
            subprocess.run(cmd, stdout=fh, check=True, env=env)
        search = time.perf_counter() - t
        rows = _ldif_rows(out)  # not timed: the floor's tools have no mapping step at all
        db = self.pg.create_database("floor")
        import psycopg

        cols = ", ".join(f'"{a}" text' for a in ATTRIBUTES)
        with psycopg.connect(db.replace("postgresql+psycopg", "postgresql")) as conn:
            conn.execute(f"CREATE TABLE floor_users ({cols})")
            t = time.perf_counter()
            with conn.cursor() as cur, cur.copy("COPY floor_users FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            copy_s = time.perf_counter() - t
        self.add("floor: ldapsearch (C, paged LDAPS) + COPY", "first import", search + copy_s,
                 written=len(rows), note=f"ldapsearch {search:.2f} s + COPY {copy_s:.2f} s")

    # --- ours ---------------------------------------------------------------------------------------------
    def dag_test(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="dagtest-", dir=self.work))
        proc = subprocess.Popen([sys.executable, "-m", "bench.dag_runner", str(REPO / "dags")], cwd=REPO,
                                env=self.env(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(proc.stdout.readline())["ready"]

        def run(dag_id: str) -> dict:
            proc.stdin.write(json.dumps({"run": dag_id}) + "\n")
            proc.stdin.flush()
            result = json.loads(proc.stdout.readline())
            if result["state"] != "success":
                raise SystemExit(f"{dag_id} failed: {result}")
            return result

        try:
            for label in ("first import", "no-op"):
                self.add_run("ours, dag.test(), 12 attributes", label, run("user_sync__bench"))
            expected = self.churn()
            self.add_run("ours, dag.test(), 12 attributes", "1% churn", run("user_sync__bench"), expected=expected)
            for label in ("first import", "no-op"):
                self.add_run("ours, dag.test(), peer's 4 fields", label, run("user_sync__bench4"))
        finally:
            proc.stdin.close()
            proc.wait(60)

    # --- results ------------------------------------------------------------------------------------------
    def add(self, path: str, case: str, seconds: float, **facts) -> None:
        row = {"path": path, "case": case, "seconds": round(seconds, 2), **facts}
        self.rows.append(row)
        print(json.dumps(row), flush=True)

    def add_run(self, path: str, case: str, result: dict, expected: dict | None = None) -> None:
        written = result["written"] or {}
        if expected is not None:
            got = {k: written.get(k, 0) for k in expected}
            assert got == expected, f"{case}: wrote {got}, the churn was {expected}"
        self.add(path, case, result["seconds"], written=sum(written.values()), xcom_bytes=result["xcom_bytes"],
                 run_bytes=result["run_bytes"], peak_rss_mb=result["peak_rss_mb"], tasks=result["tasks"])


def _ldif_rows(path: Path) -> list[tuple]:
    rows, entry = [], {}
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                if entry:
                    rows.append(tuple(entry.get(a) for a in ATTRIBUTES))
                entry = {}
                continue
            name, _, value = line.partition(":")
            entry[name] = value.lstrip(": ")
    if entry:
        rows.append(tuple(entry.get(a) for a in ATTRIBUTES))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="usersync-bench-"))
    bench = Bench(args.n, work)
    bench.start()
    try:
        bench.floor()
        bench.dag_test()
    finally:
        bench.stop()
    print(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "rows": bench.rows}))


if __name__ == "__main__":
    main()
