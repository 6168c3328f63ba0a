"""What a finished run leaves for the reports page: its report and a small summary, in its own run folder.

The run folder is on storage every worker and the API server reach (``USERSYNC_RUN_DATA``), unlike the report
file a worker writes to its own disk, so the page can list the runs of every source from there. Run folders are
pruned after ``report.retention_days``, so the history is as long as the reports are kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
REPORT = "report.txt"
EXPLANATION = "explanation.txt"  # a single-account run's explanation, on its own for the reports page
#: the counts a summary carries (and the page's chart draws), in this order
COUNTS = ("read", "inserted", "updated", "deleted", "disabled", "skipped", "pending", "returned", "protected", "detached")


def write_run_record(folder, summary: dict[str, Any], report_text: str, explanation: str | None = None) -> None:
    """Store the report and the summary next to the run's data (``folder`` is a ``RunFolder``), and a
    single-account run's explanation."""
    folder.path.mkdir(parents=True, exist_ok=True)
    with (folder.path / REPORT).open("w") as fh:
        fh.write(report_text)
    if explanation is not None:
        with (folder.path / EXPLANATION).open("w") as fh:
            fh.write(explanation)
    with (folder.path / SUMMARY).open("w") as fh:
        json.dump({**summary, "written": time.time()}, fh)


def read_summary(run_dir) -> dict[str, Any] | None:
    try:
        with (run_dir / SUMMARY).open("r") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # one unreadable run must not hide the others
        log.warning("cannot read %s: %s", run_dir / SUMMARY, exc)
        return None
    return data if isinstance(data, dict) else None


def recent_runs(base, days: float = 15, now: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every summary under ``base/<dag id>/<run id>/`` written in the last ``days``, per DAG, oldest first."""
    cutoff = (now if now is not None else time.time()) - days * 86400
    found: dict[str, list[dict[str, Any]]] = {}
    if not base.exists():
        return found
    for dag_dir in base.iterdir():
        if not dag_dir.is_dir():
            continue
        for run_dir in dag_dir.iterdir():
            summary = read_summary(run_dir) if run_dir.is_dir() else None
            if summary and summary.get("written", 0) >= cutoff:
                found.setdefault(dag_dir.name, []).append({**summary, "folder": run_dir.name})
    for runs in found.values():
        runs.sort(key=lambda s: s.get("started") or "")
    return dict(sorted(found.items()))


def report_text(run_dir, name: str = REPORT) -> Iterator[str]:
    """The run's report (or another of its texts), in pieces (FileNotFoundError when the run has none)."""
    with (run_dir / name).open("r") as fh:
        while chunk := fh.read(1 << 16):
            yield chunk
