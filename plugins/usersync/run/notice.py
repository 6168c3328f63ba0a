"""What a chat channel is told of a run: the alarm mail's news in a few lines, and the one link that matters —
the approval to answer, else the run's report. Renderers per channel (Slack blocks, a Teams card, plain text)
live with the senders; this is their shared content. Nothing from the directory is read as markup there."""

from __future__ import annotations

from dataclasses import dataclass, field

from usersync.run.report import RunReport

#: lines of a notice's body at most (the report has everything)
LINES = 6


@dataclass(frozen=True)
class Notice:
    event: str  # alarm, warning, approval, success (``usersync.rules.notify.EVENTS``)
    title: str
    lines: list[str] = field(default_factory=list)
    link: str | None = None
    link_label: str = "Open the report"

    def text(self) -> str:
        """Plain text: title, lines, link."""
        return "\n".join([self.title, *self.lines, *([f"{self.link_label}: {self.link}"] if self.link else [])])


def report_notice(report: RunReport, event: str, link: str | None) -> Notice:
    """A run's notice: its subject, status and counts, why it failed or was blocked, its health."""
    lines = [f"status: {report.status}"]
    if report.plan:
        lines.append("statistics: " + ", ".join(f"{k} {v}" for k, v in report.statistics().items() if v))
    if report.verdict and report.verdict.get("blocked"):
        lines += [line[:500] for line in str(report.verdict["message"]).splitlines() if line.startswith("BLOCKED")]
    if report.failure and not report.failure.get("blocked"):
        lines.append(f"failed at step {report.failure['step']}: {report.failure['type']}: "
                     f"{(report.failure.get('error') or '').splitlines()[0][:300] if report.failure.get('error') else ''}")
    if report.health or report.skipped:
        lines.append(str(report.health or report.skipped)[:500])
    return Notice(event, report.subject().removeprefix("[usersync] "), lines[:LINES], link)


def approval_notice(request: dict[str, str], link: str) -> Notice:
    """A blocked run waits: what it asks (the request's subject and first line), and where to answer."""
    first = next((line for line in request["body"].splitlines() if line.strip()), "")
    return Notice("approval", f"APPROVAL NEEDED: {request['subject'].removeprefix('usersync: ')}",
                  [first.replace("**", "")[:500], "Nothing is written until someone answers."], link,
                  "Approve or reject it in Airflow (Required Actions)")
