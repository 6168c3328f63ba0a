"""What the change guard costs a run, through the DAG (``dag.test()``), beside its reference: the same runs with the
guard off (``max_read_drop_percent`` and ``max_cleared_percent`` null).

    .venv/bin/python -m bench.bench_change_guard [N] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 20,000) and one private PostgreSQL users table. In one session:

1. warm-up: the first import (the session's first run also pays the DAG's start-up);
2. a nightly run with nothing to change — guard off (reference), then guard on (the read compared with the last
   applied one, place by place);
3. the ``department`` attribute renamed in the rules (every user's department cleared: what the guard exists
   for) — guard off (reference, applied), then back, then guard on, lifted with ``allow_mass_change`` (applied).

Each step checks what it wrote: nothing on the no-op runs, N updates on the renamed-attribute runs.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bench.bench_dag import FULL_FIELDS, rules
from bench.dag_session import bench_main, dag_section, dag_session

DAY0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
OFF = {"max_read_drop_percent": None, "max_cleared_percent": None}


def run_benchmark(n: int, work: Path | None = None) -> list[dict]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-guard-"))
    data = rules("bench", n, FULL_FIELDS)
    renamed = {**FULL_FIELDS, "department": {"policy": "import", "attribute": "departmentRenamed"}}
    rules_file = work / "home" / "rules" / "bench.yaml"
    rows: list[dict] = []
    day = iter(range(100))

    def write(fields: dict, guard: bool) -> None:
        rules_file.write_text(yaml.safe_dump({**data, "fields": fields,
                                              "safety": {**data["safety"], **({} if guard else OFF)}}))

    with dag_session(work, n, data, "guard", rows) as session:
        def run(case: str, expect: dict[str, int], conf: dict | None = None) -> None:
            result = session.run(case, conf, run_after=(DAY0 + timedelta(days=next(day))).isoformat())
            got = {k: v for k, v in (result.get("written") or {}).items() if v}
            assert got == expect, f"{case}: wrote {got}, not {expect}"

        run("warm-up: first import", {"inserted": n})
        write(FULL_FIELDS, guard=False)
        run("reference: nothing to change, guard off", {})
        write(FULL_FIELDS, guard=True)
        run("nothing to change, guard on", {})
        write(renamed, guard=False)
        run(f"reference: department cleared on {n:,} users, guard off", {"updated": n})
        write(FULL_FIELDS, guard=False)
        run("(department restored, guard off)", {"updated": n})
        write(renamed, guard=True)
        run(f"department cleared on {n:,} users, guard on, lifted (allow_mass_change)", {"updated": n},
            {"allow_mass_change": True})
    return rows


def markdown(n: int, rows: list[dict], command: str) -> str:
    return dag_section(f"Change guard: its cost on a run of {n:,} users, beside the same run without it", command,
                       "each reference — the same run with the guard off — just before", rows, "run")


def main() -> None:
    bench_main(__doc__, "bench.bench_change_guard", 20_000, run_benchmark, markdown)


if __name__ == "__main__":
    main()
