"""A run's metrics through Airflow's own metrics client (``[metrics]``: StatsD or OpenTelemetry, as configured
for Airflow itself; nothing when metrics are off). Emitting never fails a run."""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk.observability import stats

from usersync.run.metrics import GAUGE, run_metrics
from usersync.run.report import RunReport

log = logging.getLogger(__name__)


def emit(report: RunReport) -> int:
    """Send the run's metrics; returns how many were handed to the metrics client."""
    sent = 0
    for metric in run_metrics(report):
        try:
            if metric.kind == GAUGE:
                stats.gauge(metric.name, metric.value, tags={"source": report.source})
            else:
                stats.timing(metric.name, timedelta(milliseconds=metric.value), tags={"source": report.source})
            sent += 1
        except Exception as exc:  # noqa: BLE001 - metrics are observation: the run's outcome stands
            log.error("could not emit metric %s: %s", metric.name, exc)
    if sent:
        log.info("metrics: %d emitted for %s (usersync.%s.*)", sent, report.source, report.source)
    return sent
