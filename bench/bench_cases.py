"""An onboarding's cases through the DAG (``dag.test()``): N proposals opened by one run, confirmed in bulk, and
applied by one run — beside its reference, the same N links made by the run itself (``level: link``).

    .venv/bin/python -m bench.bench_cases [N] [--out docs/benchmarks.md]

One private slapd with N AD-like users (default 5,000) and one private PostgreSQL users table holding N local
users with the directory's e-mail addresses (as a CSV import leaves them). In the same session:

1. reference: ``match: [{by: email, level: link}]`` — one run links all N users itself (run twice: the first
   run of a session also pays the DAG's start-up);
2. the table reset to the same N local users; ``level: propose`` — one run opens N cases;
3. one bulk confirm of all N cases (``store.cases.decide``, what the cases page and its API call);
4. one run applies the N decisions.

Each step checks its outcome: N users owned by the source after 1 and 4, N open cases after 2, N closed after 4.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import create_engine, func, insert, select, text

from bench.bench_dag import FULL_FIELDS, rules
from bench.dag_session import bench_main, dag_section, dag_session
from devtools.ad_data import ad_user
from usersync.core.users_table import cases, users
from usersync.store.cases import decide
from usersync.store.schema_version import ensure_schema

DAY0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def _locals(engine, n: int) -> None:
    """An empty log and cases table, and N local users: the directory's names and e-mail addresses."""
    ensure_schema(engine)
    with engine.begin() as c:
        c.execute(text("TRUNCATE users, user_events, cases, source_state RESTART IDENTITY"))
        c.execute(insert(users), [{"username": f"local{i}", "first_name": u["givenName"], "last_name": u["sn"],
                                   "email": str(u["mail"]).lower(), "language": "de"}
                                  for i, u in ((i, ad_user(i)) for i in range(n))])


def _count(engine, query) -> int:
    with engine.connect() as c:
        return int(c.execute(query).scalar_one())


def run_benchmark(n: int, work: Path | None = None) -> list[dict]:
    work = work or Path(tempfile.mkdtemp(prefix="usersync-bench-cases-"))
    data = rules("bench", n, FULL_FIELDS)
    rules_file = work / "home" / "rules" / "bench.yaml"
    rows: list[dict] = []
    with dag_session(work, n, {**data, "match": [{"by": "email", "level": "link"}]}, "cases", rows) as session:
        engine = create_engine(session.target_url)
        owned = select(func.count()).select_from(users).where(users.c.source == "bench")

        def run(case: str, day: int) -> None:
            started = time.perf_counter()
            session.run(case, run_after=(DAY0 + timedelta(days=day)).isoformat())
            rows[-1]["measured"] = round(time.perf_counter() - started, 2)

        for label in ("warm-up: the session's first run", f"reference: {n:,} sure matches linked by the run "
                                                          "(level: link)"):
            _locals(engine, n)
            run(label, 0)
            assert _count(engine, owned) == n, "the reference run did not link every user"

        _locals(engine, n)
        rules_file.write_text(yaml.safe_dump({**data, "match": [{"by": "email", "level": "propose"}]}))
        run(f"{n:,} proposals opened (level: propose)", 1)
        assert _count(engine, owned) == 0
        assert _count(engine, select(func.count()).select_from(cases).where(cases.c.status == "open")) == n

        with engine.connect() as c:
            ids = [r.id for r in c.execute(select(cases.c.id))]
        started = time.perf_counter()
        results = decide(engine, ids, "confirm", "bench", ["bench"])
        seconds = time.perf_counter() - started
        assert set(results.values()) == {"ok"}, "the bulk confirm refused some cases"
        rows.append({"case": f"bulk confirm of {n:,} cases (store.cases.decide, one transaction)", "seconds": seconds,
                     "measured": round(seconds, 2)})

        run(f"{n:,} confirmed matches applied by one run", 2)
        assert _count(engine, owned) == n
        assert _count(engine, select(func.count()).select_from(cases).where(cases.c.status == "closed")) == n
        engine.dispose()
    return rows


def markdown(n: int, rows: list[dict], command: str) -> str:
    return dag_section(f"Cases: an onboarding of {n:,} proposals, confirmed in bulk and applied by one run", command,
                       "the reference — the same links made by the run itself — first", rows, "step")


def main() -> None:
    bench_main(__doc__, "bench.bench_cases", 5_000, run_benchmark, markdown)


if __name__ == "__main__":
    main()
