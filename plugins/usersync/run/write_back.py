"""Write-back as two steps over the run folder, so any orchestrator can put the guard (and an approval) between
them: ``plan_step`` decides what to write (``writeback/plan.parquet``), ``write_step`` writes it through the
source's writer — or, in a dry run, only lists it — and keeps each outcome (``writeback/results.parquet``).
What they return is small: references, counts and the first lines for the report."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine

from usersync.core.progress import Progress
from usersync.core.run_folder import RunFolder, TableRef
from usersync.plan.write_back import plan_writes
from usersync.rules import Rules
from usersync.sources.errors import SourceUnreachable
from usersync.sources.planned_write import WRITE_SCHEMA, Write, writes_of, writes_table
from usersync.sources.record import SourceRecord
from usersync.sources.writer import CHANGED, FAILED, WRITTEN, DirectoryWriter, Outcome
from usersync.store.owned import owned_users

log = logging.getLogger(__name__)
PLAN_FILE = "writeback/plan.parquet"
RESULTS_FILE = "writeback/results.parquet"
RESULTS_SCHEMA = WRITE_SCHEMA.append(pa.field("status", pa.string())).append(pa.field("message", pa.string()))


def plan_step(rules: Rules, engine: Engine, folder: RunFolder, records: Iterable[SourceRecord],
              target_of: Callable[[SourceRecord], str]) -> dict[str, Any]:
    """What to write: this source's users (as the users table holds them now) against ``records`` (the
    directory's values as the run read them). Returns the plan's reference and its size, per attribute. Rules
    without a ``write_back`` section (a draft that drops it, previewed) plan nothing."""
    spec = rules.write_back
    fields = sorted({rule.field for rule in spec.attributes.values()}) if spec else []
    owned = owned_users(engine, rules.source.name, fields)
    writes = plan_writes(rules, owned, records, target_of)
    ref = folder.write(PLAN_FILE, writes_table(writes), WRITE_SCHEMA)
    per_attribute = dict(Counter(w.attribute for w in writes))
    log.info("write-back plan: %d value(s) to write for %d user(s) of %s%s", len(writes),
             len({w.user_id for w in writes}), rules.source.name,
             f" ({', '.join(f'{a} {n}' for a, n in per_attribute.items())})" if per_attribute else "")
    return {"plan": ref.to_json(), "writes": len(writes), "per_attribute": per_attribute}


def planned(folder: RunFolder, plan: dict[str, Any]) -> list[Write]:
    return list(writes_of(folder.read(TableRef.from_json(plan["plan"]))))


def write_step(writer: DirectoryWriter, folder: RunFolder, plan: dict[str, Any], dry_run: bool,
               max_lines: int = 200, guard: Callable[[int], None] | None = None,
               logged: Callable[[list[Write]], Any] | None = None) -> dict[str, Any]:
    """Write the plan (each value only while the directory still holds what the run read), or in a dry run list
    it; returns the counts and the first ``max_lines`` lines — failures and changed values first. ``guard`` is
    asked with the number of values actually loaded, before any is written (it raises to stop the wave);
    ``logged`` is given the values written (for the per-user log)."""
    writes = planned(folder, plan)
    if guard is not None and not dry_run:
        guard(len(writes))
    if dry_run:
        log.info("dry run: nothing written to the directory; %d value(s) would be written", len(writes))
        lines = [f"~ would write {w.line()}" for w in writes]
        return {"dry_run": True, "planned": len(writes), "lines": lines[:max_lines],
                "more": max(len(lines) - max_lines, 0)}
    outcomes = _write_all(writer, writes)
    rows = [{**asdict(w), "status": o.status, "message": o.message} for w, o in zip(writes, outcomes, strict=True)]
    results = folder.write(RESULTS_FILE, pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA), RESULTS_SCHEMA)
    counts = Counter(o.status for o in outcomes)
    if logged is not None:
        logged([w for w, o in zip(writes, outcomes, strict=True) if o.status == WRITTEN])
    problems = [f"! {w.username}: {w.attribute} not written — {o.message}"
                for w, o in zip(writes, outcomes, strict=True) if o.status != WRITTEN]
    done = [f"↑ {w.line()}" for w, o in zip(writes, outcomes, strict=True) if o.status == WRITTEN]
    lines = problems + done
    log.info("write-back: %d written, %d changed meanwhile (left as they are), %d failed", counts[WRITTEN],
             counts[CHANGED], counts[FAILED])
    return {"dry_run": False, "planned": len(writes), "written": counts[WRITTEN], "changed": counts[CHANGED],
            "failed": counts[FAILED], "lines": lines[:max_lines], "more": max(len(lines) - max_lines, 0),
            "results": results.to_json()}


def _write_all(writer: DirectoryWriter, writes: list[Write]) -> list[Outcome]:
    """Every write's outcome. A connection lost on the way fails the writes not yet made (the next run plans
    them again); it does not undo or hide those made."""
    outcomes: list[Outcome] = []
    if not writes:
        return outcomes
    progress = Progress("write-back", log, total=len(writes))
    with writer:
        try:
            for write, outcome in zip(writes, writer.write(writes), strict=False):
                outcomes.append(outcome)
                progress.advance()
                if outcome.status != WRITTEN:
                    log.warning("%s: %s not written — %s", write.username, write.attribute, outcome.message)
        except SourceUnreachable as exc:
            log.error("%s; %d value(s) not written", exc, len(writes) - len(outcomes))
            outcomes += [Outcome(FAILED, f"not attempted: {exc}")] * (len(writes) - len(outcomes))
    progress.done()
    return outcomes
