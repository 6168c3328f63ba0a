"""What a run tells the metrics backend (Airflow's ``[metrics]``: StatsD or OpenTelemetry): per source, its
duration, counts, guard verdicts, quarantine state and last success — the names ``docs/metrics.md`` lists and
the Grafana dashboard (``docs/grafana-dashboard.json``) reads.

Names carry the source (``usersync.<source>.inserted``), as Airflow's own per-DAG metrics do, so plain StatsD
(no tags) keeps sources apart; the source is also given as a tag for backends that take tags. A dry run reports
nothing: its counts are planned, not written.
"""

from __future__ import annotations

from dataclasses import dataclass

from usersync.run.report import BLOCKED, FAILED, SKIPPED, RunReport

#: the counts of a run the metrics carry (the report's statistics; ``held``: users the rules hold as they are;
#: absent ones are 0)
COUNTS = ("read", "inserted", "updated", "deleted", "disabled", "detached", "skipped", "parked", "held")
GAUGE, TIMING = "gauge", "timing"


@dataclass(frozen=True)
class Metric:
    kind: str  # gauge, timing (milliseconds)
    name: str
    value: int | float  # counts and flags as integers


def names(source: str) -> list[str]:
    """Every metric name a source's runs emit (the docs and the dashboard list these)."""
    return [f"usersync.{source}.{n}" for n in (*COUNTS, "duration", "blocked", "failed", "quarantined",
                                                 "last_success")]


def run_metrics(report: RunReport) -> list[Metric]:
    """The metrics of one finished run (none for a dry run or a draft preview)."""
    if report.dry_run:
        return []
    base = f"usersync.{report.source}"
    quarantined = report.status == SKIPPED or bool(report.health and report.health.startswith("QUARANTINED"))
    out = [Metric(GAUGE, f"{base}.quarantined", int(quarantined))]
    if report.status == SKIPPED:
        return out
    stats = {**report.statistics(), "held": report.plan.held} if report.plan else {}
    out += [Metric(GAUGE, f"{base}.{name}", int(stats.get(name, 0))) for name in COUNTS]
    out += [Metric(TIMING, f"{base}.duration", (report.ended - report.started).total_seconds() * 1000.0),
            Metric(GAUGE, f"{base}.blocked", int(report.status == BLOCKED)),
            Metric(GAUGE, f"{base}.failed", int(report.status == FAILED))]
    if report.status not in (BLOCKED, FAILED):
        out.append(Metric(GAUGE, f"{base}.last_success", report.ended.timestamp()))
    return out
