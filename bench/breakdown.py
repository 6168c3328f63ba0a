"""Where the wall time of one DAG run goes, from Airflow's own records: per task on the critical path, the
hand-over before it (the previous task's end → this task running: scheduler loop, executor, task process
fork), its start-up (task running → our step starts, plus our step's end → task ends: Task SDK, DAG file parse,
imports, XCom), and our code (the ``<step>: step done in X s`` line every step logs).

The critical path is walked back from the task instance that ended last: each step back is the instance that
ended last before this one started. Mapped tasks count as one hop (their slowest instance is on the path).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

STEP_DONE = re.compile(r"(\S+): step done in ([0-9.]+) s")


@dataclass
class Hop:
    task: str
    handover: float  # previous hop's end (or the run's start) → this task running
    startup: float  # task running → task ended, minus our code
    code: float  # our step, as it logged
    parse_ms: int  # the Task SDK's parse of the DAG file in this task (Airflow logs it)


@dataclass
class Breakdown:
    wall: float
    hops: list[Hop]
    tail: float  # last task's end → the run's end

    @property
    def summary(self) -> dict[str, float]:
        return {"hops": len(self.hops), "hand-over": round(sum(h.handover for h in self.hops) + self.tail, 2),
                "start-up": round(sum(h.startup for h in self.hops), 2),
                "our code": round(sum(h.code for h in self.hops), 2),
                "DAG parse ms": max((h.parse_ms for h in self.hops), default=0)}

    def path(self) -> str:
        return " → ".join(f"{h.task} {h.handover:.1f}+{h.startup:.1f}+{h.code:.1f}" for h in self.hops)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def task_log_facts(log_file: Path) -> tuple[float, int]:
    """From one task log: our step's own seconds (0 when the task logs none, e.g. an operator task) and the
    milliseconds the Task SDK took to parse the DAG file."""
    code, parse_ms = 0.0, 0
    if not log_file.exists():
        return code, parse_ms
    for line in log_file.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"event": line}
        parse_ms = max(parse_ms, int(entry.get("dag_file_parse_ms") or 0))
        if m := STEP_DONE.search(str(entry.get("event", ""))):
            code = float(m.group(2))
    return code, parse_ms


def log_file(logs: Path, dag_id: str, run_id: str, ti: dict) -> Path:
    folder = logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
    if ti.get("map_index", -1) >= 0:
        folder = folder / f"map_index={ti['map_index']}"
    return folder / f"attempt={max(ti.get('try_number') or 1, 1)}.log"


def breakdown(run: dict, task_instances: list[dict], logs: Path) -> Breakdown:
    """The critical path of a finished run (``run`` and ``task_instances`` as the REST API returns them)."""
    ran = [ti for ti in task_instances if ti.get("start_date") and ti.get("end_date")]
    chain: list[dict] = []
    current = max(ran, key=lambda ti: _time(ti["end_date"]))
    while current is not None:
        chain.append(current)
        start = _time(current["start_date"])
        before = [ti for ti in ran if _time(ti["end_date"]) <= start]
        current = max(before, key=lambda ti: _time(ti["end_date"])) if before else None
    chain.reverse()
    hops, previous_end = [], _time(run["start_date"])
    for ti in chain:
        start, end = _time(ti["start_date"]), _time(ti["end_date"])
        code, parse_ms = task_log_facts(log_file(logs, run["dag_id"], run["dag_run_id"], ti))
        duration = (end - start).total_seconds()
        hops.append(Hop(ti["task_id"], round((start - previous_end).total_seconds(), 2),
                        round(max(duration - code, 0.0), 2), round(code, 2), parse_ms))
        previous_end = end
    wall = (_time(run["end_date"]) - _time(run["start_date"])).total_seconds()
    return Breakdown(round(wall, 2), hops, round((_time(run["end_date"]) - previous_end).total_seconds(), 2))
