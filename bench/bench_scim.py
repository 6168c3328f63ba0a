"""A SCIM 2.0 source at scale, through the DAG (``dag.test()``): N users from scim2-server, and the share of the read
spent waiting on HTTP.

    .venv/bin/python -m bench.bench_scim [N] [--out docs/benchmarks.md]

scim2-server (the python-scim project's server, in-process on a loopback port, in-memory) with N users (default
10,000) added through its SCIM API; a private PostgreSQL users table; the rules of ``tests/test_scim_source.py``
with pages of 1,000 (the server's maxResults). Runs: the first import, then a run with nothing changed (SCIM has no
change feed: every run reads everything); then ``--removed`` percent of the users deleted in the provider and a
run that confirms each removal with the provider (``GET /Users/{id}``, 404) before deleting its user. In the same
session, the references: the same pages fetched with httpx alone (``GET /Users`` with the same ``attributes``),
i.e. the time the extract spends waiting on HTTP, and the same one-by-one lookups with httpx alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_dag import publish
from bench.dag_session import runner_session
from tests.support.scim_server import ScimServer, scim_user
from tests.test_scim_source import scim_rules


class Provider:
    """The bench's SCIM server as ``runner_session`` wants a directory: its connection."""

    def __init__(self, server: ScimServer):
        self.server = server

    def connection_extra(self) -> dict[str, Any]:
        return {"conn_type": "usersync_scim", "host": self.server.url, "password": "bench-token",
                "extra": {"insecure_http": True}}  # scim2-server serves plain HTTP on loopback


def http_only(server: ScimServer, attributes: str, count: int) -> tuple[float, int]:
    """Seconds to fetch every page with httpx alone, and the users they held."""
    started, got, start = time.perf_counter(), 0, 1
    with httpx.Client(base_url=server.url, timeout=120) as client:
        while True:
            page = client.get("/Users", params={"startIndex": start, "count": count, "attributes": attributes}).json()
            got += len(page["Resources"])
            start += len(page["Resources"])
            if not page["Resources"] or start > page["totalResults"]:
                break
    return time.perf_counter() - started, got


def lookups_only(server: ScimServer, ids: list[str], attributes: str) -> float:
    """Seconds to ask for each id with httpx alone (``GET /Users/{id}``, answered 404 once deleted)."""
    started = time.perf_counter()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for resource_id in ids:
            client.get(f"/Users/{resource_id}", params={"attributes": attributes})
    return time.perf_counter() - started


def run_benchmark(n: int, work: Path | None = None, removed_percent: float = 1.0) -> dict[str, Any]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-scim-"))
    server = ScimServer().start()
    rows: list[dict] = []
    try:
        started = time.perf_counter()
        ids = [server.add(scim_user(i)) for i in range(n)]
        loading = time.perf_counter() - started
        rules = scim_rules(page_size=1000)
        rules["source"]["conn_id"] = "bench_scim"
        rules["source"]["name"] = "bench"
        rules["target"] = {"conn_id": "bench_target"}
        removed = ids[:: max(1, round(100 / removed_percent))] if removed_percent else []
        rules["safety"].update(max_deletes=n, max_confirmations=max(len(removed), 1))
        from usersync.sources.scim.paths import parse

        attributes = ",".join(dict.fromkeys(parse(a).requested for a in
                                            ["id", "userName", *(f["attribute"] for f in rules["fields"].values())]))
        with runner_session(work, rules, "scim", rows, Provider(server), conn_id="bench_scim") as session:
            session.run("first import")
            session.run("no-op (read in full: SCIM has no change feed)")
            for resource_id in removed:
                server.delete(resource_id)
            if removed:
                session.run(f"{len(removed):,} deleted in the provider ({removed_percent:g} %): each removal confirmed")
        seconds, users = http_only(server, attributes, 1000)
        lookups = lookups_only(server, removed, attributes)
        return {"rows": rows, "http": seconds, "http_users": users, "loading": loading, "removed": len(removed),
                "lookups": lookups}
    finally:
        server.stop()


def markdown(n: int, result: dict[str, Any], command: str) -> str:
    lines = [
        f"## SCIM 2.0: {n:,} users from scim2-server — measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; scim2-server in-process on loopback (in-memory), "
        f"PostgreSQL private on loopback, one run of `{command}` (dag.test(); pages of 1,000, the server's "
        f"maxResults; 7 attributes). Adding the {n:,} users through the server's API took {result['loading']:.0f} s.",
        "",
        "| case | wall s | check_source s | extract s | map s | diff s | apply s | rows written |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        t = r.get("tasks", {})
        written = ", ".join(f"{k} {v}" for k, v in (r.get("written") or {}).items() if v) or "—"
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {t.get('check_source', '—')} | {t.get('extract', '—')} | "
                     f"{t.get('map', '—')} | {t.get('diff', '—')} | {t.get('apply', '—')} | {written} |")
    noop = next(r for r in result["rows"] if r["case"].startswith("no-op"))
    extract = noop["tasks"].get("extract") or 0
    share = f"{100 * result['http'] / extract:.0f} %" if extract else "—"
    lines += [f"| reference: the same pages with httpx alone ({result['http_users']:,} users) | {result['http']:.2f} | "
              f"| | | | | |"]
    if result["removed"]:
        lines.append(f"| reference: {result['removed']:,} `GET /Users/{{id}}` with httpx alone | {result['lookups']:.2f} "
                     "| | | | | | |")
    lines += ["", f"Waiting on HTTP is {result['http']:.2f} s of the no-op run's {extract} s extract ({share}); the rest "
              "is resolving the SCIM paths of each user and writing the records file.", ""]
    if result["removed"]:
        confirmed = result["rows"][-1]
        diff = float(confirmed["tasks"].get("diff") or 0)
        lines += [f"Confirming {result['removed']:,} removals one by one happens in the diff task: {diff:.2f} s against "
                  f"the no-op's {noop['tasks'].get('diff', '—')} s; the lookups alone take {result['lookups']:.2f} s "
                  f"with httpx. The run took {confirmed['seconds']:.2f} s against the no-op's {noop['seconds']:.2f} s.",
                  ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("--removed", type=float, default=1.0, help="percent of the users deleted before the last run")
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args()
    result = run_benchmark(args.n, removed_percent=args.removed)
    publish(markdown(args.n, result, " ".join(["python -m bench.bench_scim", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
