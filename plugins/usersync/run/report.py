"""The report of one run: a text an administrator reads in the task log, in a file, and in an alarm mail.

Every run gets one, failed and blocked runs included. Skipped accounts are listed with the reason so the admin
can fix the entry in the directory; changes are listed per user (field old → new), capped. Secrets handed to
``render`` are masked wherever they appear, tracebacks included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from usersync.core.run_folder import folder_name
from usersync.plan.approval import Decision
from usersync.plan.changes import ChangeSet, Leaving
from usersync.run.handover import StepFailure
from usersync.run.summaries import COUNTS

SUCCESS, WARNINGS, BLOCKED, FAILED = "SUCCESS", "COMPLETED WITH WARNINGS", "BLOCKED", "FAILED"
#: runs in a row that skip an account for the same bad data before it is *parked*: reported once as parked, then
#: only counted in the statistics until its data changes (the per-user log counts the runs)
PARK_AFTER = 2
#: a scheduled run of a quarantined source that did not try the source (``usersync.plan.health``)
SKIPPED = "SKIPPED (QUARANTINED)"


def _fmt(value: Any) -> str:
    return "''" if value is None or value == "" else repr(value)


def change_lines(plan: ChangeSet, limit: int) -> list[str]:
    """One line per change, capped at ``limit`` with a line saying how many were left out."""
    lines: list[str] = []
    for ins in plan.inserts:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in ins.row.items()
                           if v not in (None, "", False) and k not in ("ad_username", "domain", "source", "username"))
        lines.append(f"+ insert {ins.row.get('username')} ({ins.label}): {values}")
    for upd in plan.updates:
        diffs = ", ".join(f"{c}: {_fmt(o)} → {_fmt(n)}" for c, (o, n) in sorted(upd.changes.items()))
        old, new = upd.changes.get("ad_username", ("", ""))
        if old and new and old.casefold() != new.casefold():  # same anchor, another name: the account was renamed
            lines.append(f"~ rename {old} → {new} (user {upd.username}): {diffs}")
        else:
            lines.append(f"~ update {upd.username}: {diffs}")
    for dis in plan.disables:
        lines.append(f"- disable {dis.username} ({dis.domain}\\{dis.ad_username}): no longer in the source")
    for dele in plan.deletes:
        lines.append(f"- delete {dele.username} ({dele.domain}\\{dele.ad_username}): no longer in the source")
    left = plan.writes - min(len(lines), limit)  # a preview of a large plan holds fewer lines than it counts
    if left > 0:
        lines = lines[:limit] + [f"… {left} more change(s) left out (report.max_change_lines = {limit})"]
    return lines


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "?"


#: the leavers' sections: (ChangeSet attribute, heading, one line per entry)
LIFECYCLE_SECTIONS: tuple[tuple[str, str, Callable[[Leaving], str]], ...] = (
    ("pending", "pending deletion (disabled; deleted by the first run after the grace period, unless the account "
                "comes back):",
     lambda e: f"… {e.label}: gone since {_day(e.left_at)}, deleted on {_day(e.until)}"),
    ("returns", "returned (re-enabled with every value they had):",
     lambda e: f"↺ {e.label}: returned after {e.days} day(s)" if e.days is not None else f"↺ {e.label}: returned"),
    ("holds", "protected (held: not deleted or disabled, or not updated):", lambda e: f"= {e.label}: {e.reason}"),
    ("detaches", "detached (now local users: AD username, Domain and owner cleared, every other value kept):",
     lambda e: f"→ {e.label}: {e.reason}"),
)


def lifecycle_lines(plan: ChangeSet, limit: int) -> list[str]:
    """The leavers' sections of a report: pending deletion, returns, protected holds, detaches (each capped)."""
    out: list[str] = []
    for kind, heading, line in LIFECYCLE_SECTIONS:
        entries, total = getattr(plan, kind), plan.total(kind)
        if not total:
            continue
        out += ["", heading, *(line(e) for e in entries[:limit])]
        if total > min(len(entries), limit):
            out.append(f"… {total - min(len(entries), limit)} more (the change set has them all)")
    return out


class ReportSection:
    """What one feature adds to a run's report, each part in its place: ``preface`` (before the statistics),
    ``head`` (under the verdicts), ``warnings`` (counted in the status), ``detail`` (before the changes) and
    ``tail`` (after the skipped accounts). A feature subclasses it and fills in the parts it has; the report
    itself knows no feature."""

    def preface(self, report: RunReport) -> list[str]:
        return []

    def head(self, report: RunReport) -> list[str]:
        return []

    def warnings(self, report: RunReport) -> list[str]:
        return []

    def detail(self, report: RunReport) -> list[str]:
        return []

    def tail(self, report: RunReport) -> list[str]:
        return []


@dataclass
class DraftChanges(ReportSection):
    """A draft preview: what the draft changes against the live rules."""

    lines: list[str]

    def preface(self, report: RunReport) -> list[str]:
        return ["the draft against the live rules:", *(f"  {line}" for line in self.lines), ""]


@dataclass
class AccountExplanation(ReportSection):
    """A single-account run: the account's explanation, step by step."""

    lines: list[str]

    def detail(self, report: RunReport) -> list[str]:
        return ["", *self.lines] if self.lines else []


@dataclass
class Conflicts(ReportSection):
    """Planned changes apply left out because the users table changed during the run (first lines, how many)."""

    lines: list[str]
    count: int

    def warnings(self, report: RunReport) -> list[str]:
        return [f"{self.count} planned change(s) not applied: the users table changed during the run (see below); "
                "the next run reconciles"] if self.count else []

    def tail(self, report: RunReport) -> list[str]:
        if not self.lines:
            return []
        out = ["", "not applied (changed in the users table during the run):", *(f"! {line}" for line in self.lines)]
        if self.count > len(self.lines):
            out.append(f"… {self.count - len(self.lines)} more in the apply task's log")
        return out


@dataclass
class Cases(ReportSection):
    """What the run did with cases (``store.cases``): counts in the head; cases that are new or changed since the
    last report counted as a warning and listed (so each goes out in one mail, not every night)."""

    recorded: dict[str, int] = field(default_factory=dict)  # apply's counts: cases_opened, _changed, _applied, _closed
    planned: dict[str, int] = field(default_factory=dict)  # the plan's: numbers_held, proposed, decisions
    live: dict[str, int] = field(default_factory=dict)  # live cases of the source per status, after the run
    fresh: list[dict[str, Any]] = field(default_factory=list)  # open cases no report announced yet
    link: str = ""
    limit: int = 200  # cases listed at most (an onboarding opens thousands; the cases page has them all)

    def head(self, report: RunReport) -> list[str]:
        out = []
        if self.planned.get("numbers_held") or self.planned.get("proposed") or self.planned.get("decisions"):
            verb = "would be " if report.dry_run else ""
            out.append(f"cases: {self.planned.get('numbers_held', 0)} number(s) {verb}held aside, "
                       f"{self.planned.get('proposed', 0)} match(es) {verb}waiting for a decision, "
                       f"{self.planned.get('decisions', 0)} decision(s) {verb}applied")
        if self.recorded:
            out.append("cases: " + ", ".join(f"{n} {what.removeprefix('cases_')}" for what, n in self.recorded.items()))
        if self.live:
            out.append("live cases: " + ", ".join(f"{n} {status}" for status, n in sorted(self.live.items()))
                       + (f" — decide them at {self.link}" if self.link else ""))
        return out

    def warnings(self, report: RunReport) -> list[str]:
        return [f"{len(self.fresh)} case(s) new or changed, waiting for a decision (see below)"] if self.fresh else []

    def tail(self, report: RunReport) -> list[str]:
        if not self.fresh:
            return []
        more = len(self.fresh) - self.limit
        return ["", "cases new or changed since the last report (? waiting for a decision):",
                *(f"? {case_line(c)}" for c in self.fresh[:self.limit]),
                *([f"… {more} more on the cases page{': ' + self.link if self.link else ''}"] if more > 0 else [])]


def case_line(case: dict[str, Any]) -> str:
    """One case in words."""
    who = f"{case.get('domain')}\\{case.get('ad_username')}" if case.get("ad_username") else case.get("account")
    if case["kind"] == "number":
        holder = case.get("holder") or "?"
        kind = (case.get("detail") or {}).get("holder_is", "")
        return (f"case {case['id']}: {case['field']} {case['value']} of {who} is held aside: user {holder!r} "
                f"({kind}) has it; {who} was written without it")
    candidates = (case.get("detail") or {}).get("candidates", [])
    names = ", ".join(f"{c.get('username')!r} (id {c['id']}, by {', '.join(c.get('by', []))})" for c in candidates)
    return f"case {case['id']}: {who} may be an existing user: {names}; not inserted or linked until decided"


@dataclass
class WriteBack(ReportSection):
    """What write-back did (``usersync.run.write_back.write_step``'s summary), its guard's verdict, the approval."""

    done: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None

    def head(self, report: RunReport) -> list[str]:
        out = []
        done = self.done
        if done is not None and done.get("dry_run"):
            out.append(f"write-back (planned, dry run): {done['planned']} value(s) would be written to the directory")
        elif done is not None:
            out.append(f"write-back: {done['written']} written, {done['changed']} changed meanwhile (left), "
                       f"{done['failed']} failed — of {done['planned']} planned")
        if self.verdict:
            out.append(self.verdict["message"])
        decision = Decision.from_json(self.approval)
        if decision is not None:
            out.append(f"approval of the write-back: {decision.line()}")
        return out

    def warnings(self, report: RunReport) -> list[str]:
        out, done = [], self.done or {}
        if done.get("failed"):
            out.append(f"{done['failed']} value(s) could not be written back to the directory (see write-back "
                       "below); the users table was synced all the same")
        if done.get("changed"):
            out.append(f"{done['changed']} value(s) not written back: changed in the directory since the run read "
                       "them (left as they are; the next run plans again from the new value)")
        if report.dry_run and self.verdict and self.verdict.get("blocked"):
            out.append("a live run would wait for approval: the write-back wave is over write_back.max_writes")
        return out

    def tail(self, report: RunReport) -> list[str]:
        done = self.done
        if not done or not done.get("lines"):
            return []
        out = ["", "write-back (each value: ! not written, ↑ written, ~ would be written):", *done["lines"]]
        if done.get("more"):
            out.append(f"… {done['more']} more (the run folder's writeback/ files have them all)")
        return out


@dataclass
class RunReport:
    source: str
    run_id: str
    dry_run: bool
    started: datetime
    ended: datetime
    plan: ChangeSet | None = None
    verdict: dict[str, Any] | None = None  # safety.Verdict.to_json()
    failure: StepFailure | None = None
    warnings: list[str] = field(default_factory=list)
    max_change_lines: int = 200
    run_data: str | None = None  # the run folder: records, mapped users and the full change set as Parquet
    reading: str | None = None  # how the source was read: "full (why)" or "delta since USN n (why)"
    server: str | None = None  # where the source was read (the domain controller that answered), no secrets
    approval: dict[str, Any] | None = None  # approval.Decision.to_json(): who approved or rejected, and when
    account: str | None = None  # a single-account run: the account it read (and explains)
    draft: str | None = None  # a preview of draft rules: the draft file (always a dry run)
    #: what each feature adds to the report (``ReportSection``: write-back, conflicts, an explanation, a draft's
    #: changes), in the order given
    sections: list[ReportSection] = field(default_factory=list)
    #: the source's health after this run, in one line (failing or quarantined; None: healthy)
    health: str | None = None
    #: a scheduled run of a quarantined source: why it did not try the source
    skipped: str | None = None
    #: a failure that repeats the one last alarmed: why no alarm goes out (None: the alarm is due)
    said: str | None = None
    #: accounts skipped for the same bad data run after run: account → runs in a row (the per-user log's count)
    repeats: dict[str, int] = field(default_factory=dict)

    def _skips(self) -> tuple[list, list, int]:
        """This run's skipped accounts: reported in full, parked by this run (reported once as parked), and the
        count of those parked earlier (only counted from now on, until their data changes)."""
        skipped = self.plan.skipped if self.plan else []
        full = [s for s in skipped if self.repeats.get(s.account, 1) < PARK_AFTER]
        parked = [s for s in skipped if self.repeats.get(s.account, 1) == PARK_AFTER]
        return full, parked, len(skipped) - len(full) - len(parked)

    @property
    def kind(self) -> str:
        """What the run was: a draft preview, a single-account run, or a run over the whole source (whether that
        read the source in full or by delta is ``reading``)."""
        return "draft preview" if self.draft else "single account" if self.account else "whole source"

    @property
    def status(self) -> str:
        if self.skipped:
            return SKIPPED
        if self.failure:
            return BLOCKED if self.failure.get("blocked") else FAILED
        if self.all_warnings():
            return WARNINGS
        return SUCCESS

    def all_warnings(self) -> list[str]:
        out = list(self.warnings)
        full, parked, _earlier = self._skips()
        if full:
            out.append(f"{len(full)} account(s) skipped: see the list below")
        if parked:
            out.append(f"{len(parked)} account(s) parked: skipped for the same bad data {PARK_AFTER} runs in a row; "
                       "listed this once, then only counted until their data changes")
        if self.dry_run and self.verdict and self.verdict.get("blocked"):
            out.append(f"a live run with {'these rules' if self.draft else 'this change set'} would be BLOCKED by "
                       f"the {self.blocking_guard()}")
        for section in self.sections:
            out += section.warnings(self)
        return out

    def mail_kind(self, notify_on_success: bool) -> str | None:
        """'alarm' for failed or blocked runs (not for a failure alarmed already), 'warning' for warnings,
        'success' only when asked for; none for a quarantined source's skipped run."""
        if self.status == SKIPPED or (self.status == FAILED and self.said):
            return None
        if self.status in (FAILED, BLOCKED):
            return "alarm"
        if self.status == WARNINGS:
            return "warning"
        return "success" if notify_on_success else None

    def blocking_guard(self) -> str:
        """The guards that block the run: the write-back guard, else those its verdict names (mass-delete,
        change)."""
        if self.failure and "write_back" in self.failure.get("step", ""):
            return "write-back guard"
        blocked_by = (self.verdict or {}).get("blocked_by") or ["mass-delete"]
        return " and ".join(blocked_by) + (" guards" if len(blocked_by) > 1 else " guard")

    def subject(self) -> str:
        mode = " (draft preview)" if self.draft else " (dry run)" if self.dry_run else ""
        if self.account:
            mode = f" (account {self.account}){mode}"
        if self.status == SKIPPED:
            return f"[usersync] {self.source}: not run, the source is quarantined{mode}"
        if self.status == FAILED and self.health and self.health.startswith("QUARANTINED"):
            return (f"[usersync] ALARM: {self.source} quarantined, failed at step "
                    f"{self.failure['step'] if self.failure else '?'}{mode}")
        if self.status == FAILED:
            return f"[usersync] ALARM: {self.source} failed at step {self.failure['step'] if self.failure else '?'}{mode}"
        if self.status == BLOCKED:
            return f"[usersync] ALARM: {self.source} blocked by the {self.blocking_guard()}{mode}"
        if self.status == WARNINGS:
            return f"[usersync] WARNING: {self.source} completed with warnings{mode}"
        return f"[usersync] {self.source}: sync completed{mode}"

    def statistics(self) -> dict[str, int]:
        stats = dict(self.plan.counts()) if self.plan else {}
        withheld = self.plan.writes if self.plan and self.status == BLOCKED else 0
        _full, parked, earlier = self._skips()
        return {**stats, "blocked": withheld, **({"parked": len(parked) + earlier} if parked or earlier else {})}

    def summary(self) -> dict[str, Any]:
        """The run in a few numbers, for the reports page (JSON-able; no user data)."""
        counts = self.plan.counts() if self.plan else {}
        return {
            "source": self.source, "run_id": self.run_id, "mode": "dry run" if self.dry_run else "live",
            "status": self.status, "started": self.started.isoformat(timespec="seconds"),
            "ended": self.ended.isoformat(timespec="seconds"),
            "counts": {k: counts.get(k, 0) for k in COUNTS},
            "failed_step": self.failure["step"] if self.failure else None,
            "approval": self.approval,
            "kind": self.kind, "account": self.account, "draft": self.draft,
            "health": self.health or self.skipped,
        }

    def render(self, secrets: list[str] | None = None) -> str:
        duration = (self.ended - self.started).total_seconds()
        mode = 'DRY RUN (nothing written)' if self.dry_run else 'live'
        if self.draft:
            mode = f"DRAFT PREVIEW of {self.draft} — a dry run with the draft rules, nothing written"
        out = [
            f"usersync report — source {self.source}",
            f"run:      {self.run_id}",
            f"mode:     {mode}",
            f"status:   {self.status}",
            f"start:    {self.started.isoformat(timespec='seconds')}",
            f"end:      {self.ended.isoformat(timespec='seconds')}",
            f"duration: {duration:.1f} s",
        ]
        if self.account:
            out.append(f"account:  {self.account!r} — this account only: read alone from the source, nobody deleted")
        if self.server:
            out.append(f"from:     {self.server}")
        if self.reading:
            out.append(f"read:     {self.reading}")
        if self.run_data:
            out.append(f"run data: {self.run_data}")
        if self.skipped:
            out.append(f"not run:  {self.skipped}")
        elif self.health:
            out.append(f"health:   {self.health}")
        if self.said:
            out.append(f"alarm:    not sent again: {self.said}")
        out.append("")
        for section in self.sections:
            out += section.preface(self)
        if self.plan:
            label = "statistics (planned, dry run)" if self.dry_run else "statistics"
            out.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in self.statistics().items()))
            if self.plan.kept:
                out.append(f"kept: {self.plan.kept} user(s) no longer in the source stay (deletion policy)")
            if self.plan.held:
                out.append(f"held: {self.plan.held} user(s) left as they are: accounts the rules skip "
                           "(disabled_accounts or guests: skip) and protected users (listed below)")
            out += [f"note: {n}" for n in self.plan.notes]
        if self.verdict:
            out.append(self._verdict_line(self.verdict))
            changes = self.verdict.get("change") or {}
            if changes.get("over"):  # the change guard's breakdown: where the drop is, sample changes per field
                out += [f"  {line}" for line in changes.get("detail", [])]
        decision = Decision.from_json(self.approval)
        if decision is not None:
            out.append(f"approval: {decision.line()}")
        for section in self.sections:
            out += section.head(self)
        for w in self.all_warnings():
            out.append(f"WARNING: {w}")
        if self.failure:
            f = self.failure
            if f.get("blocked"):  # the guard's verdict above already says why and what to do
                out += ["", f"blocked at step: {f['step']}"]
            else:
                out += ["", f"failed at step: {f['step']}", f"error: {f['type']}: {f['error']}"]
                if f.get("traceback"):
                    out += ["debug information (send it to support if the error is unclear):", f["traceback"].rstrip()]
        for section in self.sections:
            out += section.detail(self)
        if self.plan:
            changes = change_lines(self.plan, self.max_change_lines)
            if changes:
                out += ["", "changes" + (" (would be applied)" if self.dry_run or self.status == BLOCKED else "") + ":"]
                out += changes
            out += lifecycle_lines(self.plan, self.max_change_lines)
            full, parked, earlier = self._skips()
            if full:
                out += ["", "skipped accounts (fix them in the source, then run again):"]
                out += [f"! {s.account}: {s.reason}" for s in full]
            if parked:
                out += ["", f"parked accounts (the same bad data {PARK_AFTER} runs in a row; from now on only counted "
                            "until their data changes):"]
                out += [f"! {s.account}: {s.reason}" for s in parked]
            if earlier:
                out.append(f"parked earlier and still skipped: {earlier} account(s) (the per-user log has each)")
        for section in self.sections:
            out += section.tail(self)
        return mask("\n".join(out) + "\n", secrets or [])

    def _verdict_line(self, verdict: dict[str, Any]) -> str:
        """The guard's verdict; a draft preview can never apply, so it is not told to approve or override."""
        if not (self.draft and verdict.get("blocked")):
            return str(verdict["message"])
        return (f"the mass-delete guard would BLOCK these rules live: {verdict['removals']} of the {verdict['owned']} "
                f"users this source owns would be removed ({verdict['percent']:.1f}%; limits: {verdict['max_deletes']} "
                f"users, {verdict['max_delete_percent']:g}%). A preview applies nothing, so there is nothing to "
                "approve here: correct the draft if these removals are wrong; if they are right, a live run with "
                "these rules will wait for approval.")


def mask(text: str, secrets: list[str]) -> str:
    """Replace every secret (longest first) with ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def report_path(directory: Path, source: str, run_id: str, started: datetime) -> Path:
    return Path(directory) / source / f"{started:%Y%m%dT%H%M%SZ}_{folder_name(run_id)}.txt"


def write_report(text: str, directory: Path, source: str, run_id: str, started: datetime) -> Path:
    path = report_path(directory, source, run_id, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def prune_reports(directory: Path, source: str, retention_days: int, now: float | None = None) -> list[Path]:
    """Remove this source's reports older than ``retention_days`` (by modification time)."""
    folder = Path(directory) / source
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    removed = []
    for path in folder.glob("*.txt") if folder.is_dir() else ():
        if path.stat().st_mtime < cutoff:
            path.unlink()
            removed.append(path)
    return removed
