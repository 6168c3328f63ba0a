"""Benchmark of a whole sync through the DAG, side by side with the floor and the peer, in one run.

    .venv/bin/python -m bench.bench_dag [N] [--no-peer] [--no-scheduler] [--no-dagtest] [--celery]
                                        [--extra-sources K] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 100,000) and one private PostgreSQL serve every contestant:
- **floor**: OpenLDAP's C client ``ldapsearch`` (paged, LDAPS) of the same 12 attributes, then PostgreSQL
  ``COPY`` of the same rows — the least any tool must spend;
- **peer**: django-python3-ldap's ``ldap_sync_users`` (its Django settings: ``bench/peer_settings.py``), with
  its 4-field mapping, cold (empty table) and warm (nothing changed);
- **ours through the DAG**: ``user_sync__bench`` (12 attributes) with ``dag.test()`` and on the scheduler path
  (api-server + scheduler + dag-processor, LocalExecutor, triggered through the REST API — the only path where
  the partitioned ``extract`` tasks run in parallel): first import, no-op, 1% churn (0.5% new, 1% modified,
  0.5% removed); and ``user_sync__bench4`` with the peer's 4-field mapping.
``--celery`` adds the distributed test's topology (CeleryExecutor, Redis, two workers); ``--extra-sources K`` puts K
more rules files in the folder (every task parses the DAG file, which builds a DAG per file).
Reported: wall time, rows written, XCom bytes per run, run-folder bytes, peak RSS, and for the scheduler paths where
the time goes along the run's critical path (``bench.breakdown``). The tables go to ``--out``.
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

from bench.breakdown import breakdown
from bench.dag_runner import admin_env
from devtools.ad_data import USERS_DN, ad_user, user_dn
from devtools.airflow_cluster import LOCAL_EXECUTOR, AirflowCluster
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
    def __init__(self, n: int, work: Path, extra_sources: int = 0):
        self.n, self.work, self.extra_sources = n, work, extra_sources
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
        for i in range(self.extra_sources):  # more sources in the folder: every task parses the DAG file
            (rules_dir / f"other{i:03d}.yaml").write_text(yaml.safe_dump(rules(f"other{i:03d}", self.n, FOUR_FIELDS)))
        env = admin_env(home, rules_dir, {"bench_ldap": self.ldap.connection_extra()})
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

    # --- the peer -----------------------------------------------------------------------------------------
    def peer(self) -> None:
        """django-python3-ldap's ``ldap_sync_users``, cold (empty table) then warm (nothing changed)."""
        self.pg.create_database("peer")
        env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "bench.peer_settings",
               "PEER_DB_PORT": str(self.pg.port), "PEER_DB_NAME": "peer", "PEER_LDAPS_PORT": str(self.ldap.tls_port),
               "PEER_CA": str(self.ldap.certs.ca), "PEER_BASE": USERS_DN, "PEER_BIND_DN": SERVICE_DN,
               "PEER_BIND_PASSWORD": self.ldap.service_password}
        django = [sys.executable, "-m", "django"]
        subprocess.run([*django, "migrate", "-v", "0"], check=True, env=env, cwd=REPO)
        for case in ("first import", "no-op"):
            before = self._rows_written("peer", "auth_user")
            t = time.perf_counter()
            proc = subprocess.run([*django, "ldap_sync_users", "-v", "0"], env=env, cwd=REPO,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - t
            if proc.returncode:
                raise SystemExit(f"peer failed: {proc.stderr[-2000:]}")
            self.add("peer: django-python3-ldap ldap_sync_users, 4 fields", case, seconds,
                     written=self._rows_written("peer", "auth_user") - before)

    def _rows_written(self, database: str, table: str) -> int:
        """Rows inserted + updated + deleted in ``table`` so far, as PostgreSQL's statistics count them."""
        import psycopg

        time.sleep(1.5)  # backends flush their counters to the shared statistics about once a second
        with psycopg.connect(f"host=127.0.0.1 port={self.pg.port} user=postgres dbname={database}") as conn:
            row = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = %s",
                               (table,)).fetchone()
        return int(row[0]) if row else 0

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

    def scheduler(self) -> None:
        """The path a deployment runs: api-server + scheduler + dag-processor (LocalExecutor), REST-triggered."""
        home = Path(tempfile.mkdtemp(prefix="scheduler-", dir=self.work))
        with AirflowServices(home, self.env(home), self.pg) as airflow:
            for label in ("first import", "no-op"):
                self.add_run("ours, scheduler path, 12 attributes", label, airflow.run("user_sync__bench"))
            expected = self.churn()
            self.add_run("ours, scheduler path, 12 attributes", "1% churn", airflow.run("user_sync__bench"),
                         expected=expected)
            for label in ("first import", "no-op"):
                self.add_run("ours, scheduler path, peer's 4 fields", label, airflow.run("user_sync__bench4"))

    def celery(self) -> None:
        """The distributed test's topology on this machine: CeleryExecutor, Redis, two workers."""
        from devtools.redis import RedisServer

        home = Path(tempfile.mkdtemp(prefix="celery-", dir=self.work))
        redis = RedisServer(self.work / "redis").start()
        try:
            with AirflowServices(home, self.env(home), self.pg, broker_url=redis.url) as airflow:
                for label in ("first import", "no-op"):
                    self.add_run("ours, Celery (2 workers), 12 attributes", label, airflow.run("user_sync__bench"))
        finally:
            redis.stop()

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
                 run_bytes=result["run_bytes"], peak_rss_mb=result["peak_rss_mb"], tasks=result["tasks"],
                 **{k: result[k] for k in ("breakdown", "path_detail") if k in result})


class AirflowServices(AirflowCluster):
    """The one-machine scheduler path (api-server, scheduler, dag-processor; LocalExecutor) of
    ``devtools.airflow_cluster`` — or, given a Redis broker, its Celery topology with two workers, as the
    distributed test runs it — with the peak RSS of every Airflow process sampled while it runs."""

    def __init__(self, home: Path, env: dict[str, str], pg: PostgresServer, broker_url: str = ""):
        meta = pg.create_database(f"{home.name}_meta".replace("-", "_"))
        if broker_url:
            super().__init__(home, env, meta, broker_url, workers=2)
        else:
            super().__init__(home, env, meta, workers=0, components=("api-server", "scheduler", "dag-processor"),
                             extra=LOCAL_EXECUTOR)
        self.meta = meta
        self.peaks: dict[int, tuple[int, str]] = {}

    def __enter__(self) -> AirflowServices:
        import threading

        self._sampling = True  # from the start: the servers' own processes are known before the first run
        threading.Thread(target=self._sample, daemon=True).start()
        try:
            super().__enter__()
        except BaseException:
            self._sampling = False
            raise
        for dag_id in ("user_sync__bench", "user_sync__bench4"):
            self.wait_for_dag(dag_id)
        return self

    def __exit__(self, *exc) -> None:
        self._sampling = False
        super().__exit__(*exc)

    def _sample(self) -> None:
        """Peak RSS of every Airflow process and its descendants (the task processes), every 0.2 s."""
        import psutil

        while self._sampling:
            for root in list(self.procs.values()):
                try:
                    family = [psutil.Process(root.pid), *psutil.Process(root.pid).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for proc in family:
                    try:
                        rss, cmd = proc.memory_info().rss, " ".join(proc.cmdline())[:120]
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    if rss > self.peaks.get(proc.pid, (0, ""))[0]:
                        self.peaks[proc.pid] = (rss, cmd)
            time.sleep(0.2)

    def run(self, dag_id: str) -> dict:
        """Trigger through the REST API and wait; timed from the run's start to its end (server clock)."""
        from datetime import datetime

        before = set(self.peaks)
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}})
        run_id = run["dag_run_id"]
        while run["state"] not in ("success", "failed"):
            time.sleep(0.5)
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] != "success":
            raise SystemExit(f"{dag_id} {run_id} failed; see {self.home}/logs")
        seconds = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        tasks: dict[str, float] = {}
        for ti in tis:
            tasks[ti["task_id"]] = round(tasks.get(ti["task_id"], 0.0) + (ti["duration"] or 0.0), 2)
        applied = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/apply/xcomEntries/return_value")
        new = [rss for pid, (rss, _cmd) in self.peaks.items() if pid not in before]
        cost = breakdown(run, tis, self.home / "logs")
        from usersync.core.run_folder import RunFolder, folder_name

        folder = RunFolder(Path(self.env["USERSYNC_HOME"]) / "runs" / dag_id / folder_name(run_id))
        return {"seconds": seconds, "tasks": tasks, "written": json_value(applied["value"])["written"],
                "xcom_bytes": self._xcom_bytes(run_id), "run_bytes": folder.size(),
                "peak_rss_mb": round(max(new, default=0) / 2**20), "breakdown": cost.summary, "path_detail": cost.path()}

    def _xcom_bytes(self, run_id: str) -> int:
        import psycopg

        with psycopg.connect(self.meta.replace("postgresql+psycopg", "postgresql")) as conn:
            (size,) = conn.execute("SELECT coalesce(sum(octet_length(value::text)), 0) FROM xcom WHERE run_id = %s",
                                   (run_id,)).fetchone()
        return int(size)


def json_value(value):
    return json.loads(value) if isinstance(value, str) else value


def _ldif_rows(path: Path) -> list[tuple]:
    rows, entry = [], {}
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("#"):  # ldapsearch's paged-results notes
                continue
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


def run_benchmark(n: int, peer: bool = True, scheduler: bool = True, dagtest: bool = True,
                  work: Path | None = None, extra_sources: int = 0, celery: bool = False) -> Bench:
    bench = Bench(n, work or Path(tempfile.mkdtemp(prefix="usersync-bench-")), extra_sources)
    bench.start()
    try:
        bench.floor()
        if peer:
            bench.peer()
        if dagtest:
            bench.dag_test()
        if scheduler:
            bench.scheduler()
        if celery:
            bench.celery()
    finally:
        bench.stop()
    return bench


def _find(rows: list[dict], path: str, case: str) -> dict | None:
    return next((r for r in rows if r["path"].startswith(path) and r["case"] == case), None)


def ratios(rows: list[dict]) -> list[str]:
    """The issue's goals, each as measured in this run."""
    out = []
    floor = _find(rows, "floor", "first import")
    peer_cold, peer_warm = _find(rows, "peer", "first import"), _find(rows, "peer", "no-op")
    for path in ("ours, scheduler path, 12", "ours, Celery", "ours, dag.test(), 12", "ours, scheduler path, peer's",
                 "ours, dag.test(), peer's"):
        first, noop, churn = (_find(rows, path, c) for c in ("first import", "no-op", "1% churn"))
        if not first:
            continue
        parts = [f"**{path} …**: first import {first['seconds']:.1f} s"]
        if peer_cold:
            parts.append(f"{peer_cold['seconds'] / first['seconds']:.1f}× faster than the peer cold")
        if floor:
            parts.append(f"{first['seconds'] / floor['seconds']:.1f}× the floor")
        if noop:
            parts.append(f"no-op {noop['seconds']:.1f} s, wrote {noop['written']}")
            if peer_warm:
                parts.append(f"{peer_warm['seconds'] / noop['seconds']:.1f}× faster than the peer warm")
            if floor:
                parts.append(f"{noop['seconds'] / floor['seconds']:.1f}× the floor")
        if churn and noop:
            parts.append(f"1% churn {churn['seconds']:.1f} s = {churn['seconds'] / noop['seconds']:.2f}× the no-op, "
                         f"wrote {churn['written']}")
        xcom = max(r.get("xcom_bytes", 0) for r in rows if r["path"].startswith(path))
        parts.append(f"XCom ≤ {xcom:,} bytes per run")
        out.append("; ".join(parts))
    return out


def markdown(n: int, rows: list[dict], command: str) -> str:
    lines = [
        f"## {n:,} users — measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB; slapd and PostgreSQL "
        "private on loopback, one run of `" + command + "`.",
        "",
        "| path | case | wall s | rows written | XCom bytes | run folder bytes | peak RSS MB | task seconds |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        tasks = ", ".join(f"{k} {v}" for k, v in r.get("tasks", {}).items()) or r.get("note", "")
        lines.append(f"| {r['path']} | {r['case']} | {r['seconds']:.2f} | {r.get('written', '')} | "
                     f"{r.get('xcom_bytes', '—')} | {r.get('run_bytes', '—')} | {r.get('peak_rss_mb', '—')} | {tasks} |")
    lines += ["", *[f"- {line}" for line in ratios(rows)], ""]
    costed = [r for r in rows if r.get("breakdown")]
    if costed:
        lines += [
            "Where the scheduler path's time goes (critical path; hand-over = previous task's end → this task "
            "running, start-up = the task's own time minus our step's; per hop: hand-over+start-up+our code, s):",
            "",
            "| path | case | wall s | hops | hand-over s | start-up s | our code s | DAG parse ms | critical path |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in costed:
            b = r["breakdown"]
            lines.append(f"| {r['path']} | {r['case']} | {r['seconds']:.2f} | {b['hops']} | {b['hand-over']:.2f} | "
                         f"{b['start-up']:.2f} | {b['our code']:.2f} | {b.get('DAG parse ms', '—')} | {r['path_detail']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--no-dagtest", action="store_true", help="skip the dag.test() path (e.g. at 1M users)")
    parser.add_argument("--celery", action="store_true", help="also the Celery topology (Redis, two workers)")
    parser.add_argument("--extra-sources", type=int, default=0,
                        help="this many more rules files in the folder (the DAG file builds a DAG for each)")
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    bench = run_benchmark(args.n, peer=not args.no_peer, scheduler=not args.no_scheduler, dagtest=not args.no_dagtest,
                          extra_sources=args.extra_sources, celery=args.celery)
    publish(markdown(args.n, bench.rows, " ".join(["python -m bench.bench_dag", *sys.argv[1:]])), args.out)


def publish(text: str, out: Path | None) -> None:
    """Print the Markdown section, and append it to ``out`` when given."""
    print(text)
    if out:
        with out.open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
