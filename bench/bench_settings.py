"""What each Airflow setting of ``devtools.airflow_cluster.LOCAL_EXECUTOR`` buys and costs, measured one step at a
time on the scheduler path (api-server, scheduler, dag-processor; LocalExecutor; REST-triggered runs):

    .venv/bin/python -m bench.bench_settings [N] [--out docs/benchmarks.md]

For each variant — Airflow's defaults (parallelism 4 only), then + the 0.1 s idle sleep, then + the preloading
forkserver — one first import and three no-op runs of ``user_sync__bench`` (N users, default 1,000), the no-op
median and its breakdown (``bench.breakdown``), then the CPU the Airflow processes use while idle (30 s, nothing
running) and their memory at rest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_dag import AirflowServices, Bench, publish
from devtools.airflow_cluster import LOCAL_EXECUTOR

BASE = {k: v for k, v in LOCAL_EXECUTOR.items() if k in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM")}
VARIANTS = {
    "Airflow defaults (parallelism 4)": {**BASE, "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1"},
    "+ scheduler_idle_sleep_time 0.1": {**BASE, "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"},
    "+ forkserver preloading usersync_airflow.runtime.preload (shipped)": dict(LOCAL_EXECUTOR),
}
IDLE_SECONDS = 30


class Services(AirflowServices):
    def __init__(self, home: Path, env: dict[str, str], pg, settings: dict[str, str]):
        super().__init__(home, env, pg)
        for key in LOCAL_EXECUTOR:  # only this variant's settings
            self.env.pop(key, None)
        self.env.update(settings)

    def idle(self, seconds: float = IDLE_SECONDS) -> tuple[float, int]:
        """CPU % of one core used by every Airflow process while nothing runs, and their RSS (MB) at rest."""
        import psutil

        def family():
            procs = []
            for root in self.procs.values():
                try:
                    procs += [psutil.Process(root.pid), *psutil.Process(root.pid).children(recursive=True)]
                except psutil.NoSuchProcess:
                    pass
            return procs

        def cpu(procs) -> float:
            total = 0.0
            for p in procs:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.NoSuchProcess:
                    pass
            return total

        time.sleep(5)  # the last run's processes end
        procs = family()
        before, t = cpu(procs), time.monotonic()
        time.sleep(seconds)
        used = (cpu(procs) - before) / (time.monotonic() - t) * 100
        rss = 0
        for p in family():
            try:
                rss += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return round(used, 1), round(rss / 2**20)


def measure(n: int) -> list[dict]:
    bench = Bench(n, Path(tempfile.mkdtemp(prefix="usersync-settings-")))
    bench.start()
    rows = []
    try:
        for name, settings in VARIANTS.items():
            home = Path(tempfile.mkdtemp(prefix="variant-", dir=bench.work))
            with Services(home, bench.env(home), bench.pg, settings) as airflow:
                first = airflow.run("user_sync__bench")
                noops = [airflow.run("user_sync__bench") for _ in range(3)]
                median = sorted(noops, key=lambda r: r["seconds"])[1]
                cpu, rss = airflow.idle()
            row = {"variant": name, "first": first["seconds"], "noop": median["seconds"],
                   "noops": [r["seconds"] for r in noops], "breakdown": median["breakdown"],
                   "idle_cpu": cpu, "rss_mb": rss}
            print(row, flush=True)
            rows.append(row)
    finally:
        bench.stop()
    return rows


def markdown(n: int, rows: list[dict], command: str) -> str:
    lines = [f"### Settings, one at a time — {n:,} users, measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", f"One run of `{command}`; no-op: the median of three.", "",
             "| variant | first import s | no-op s (three) | hops | hand-over s | start-up s | our code s | "
             "idle CPU % of a core | Airflow RSS at rest MB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = r["breakdown"]
        lines.append(f"| {r['variant']} | {r['first']:.2f} | {r['noop']:.2f} ({', '.join(f'{s:.2f}' for s in r['noops'])}) "
                     f"| {b['hops']} | {b['hand-over']:.2f} | {b['start-up']:.2f} | {b['our code']:.2f} | "
                     f"{r['idle_cpu']} | {r['rss_mb']} |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = measure(args.n)
    publish(markdown(args.n, rows, " ".join(["python -m bench.bench_settings", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
