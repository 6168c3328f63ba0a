"""Run reports: content for success, skipped users, blocked and failed runs; masking; retention; mail kind."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from tests.support.helpers import existing_rows, plan, record, rules
from tests.support.small_runs import check_plan
from usersync.plan.changes import Delete
from usersync.rules.model import SafetySpec
from usersync.run.report import (
    BLOCKED,
    FAILED,
    SUCCESS,
    WARNINGS,
    Conflicts,
    RunReport,
    WriteBack,
    prune_reports,
    write_report,
)

T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


def _report(p=None, **kw) -> RunReport:
    return RunReport(source="corp", run_id="scheduled__2026-11-27T02:30:00+00:00", dry_run=False,
                     started=T0, ended=T0 + timedelta(seconds=42), plan=p, **kw)


def _changes():
    r = rules()
    rows = existing_rows(r, [record(1), record(2)])
    return plan(r, [record(1, givenName="Zed"), record(3)], rows)


def test_success_report_has_header_statistics_and_each_change():
    text = _report(_changes()).render()
    assert "source corp" in text and "run:      scheduled__2026-11-27T02:30:00+00:00" in text
    assert "mode:     live" in text and "status:   SUCCESS" in text and "duration: 42.0 s" in text
    assert "start:    2026-11-27T02:30:00+00:00" in text
    assert "statistics: read 2, inserted 1, updated 1, deleted 1, disabled 0, unchanged 0, skipped 0, blocked 0" in text
    assert "~ update user000001: first_name: 'Anna' → 'Zed'" in text
    assert "+ insert user000003 (EXAMPLE\\user000003)" in text
    assert "- delete user000002 (EXAMPLE\\user000002): no longer in the source" in text
    assert _report(_changes()).status == SUCCESS


def test_skipped_users_are_listed_with_account_and_reason_and_make_a_warning():
    r = rules()
    p = plan(r, [record(1), record(2, mail="oops")])
    rep = _report(p)
    text = rep.render()
    assert rep.status == WARNINGS and rep.mail_kind(False) == "warning"
    assert "WARNING: 1 account(s) skipped" in text
    assert f"! {record(2).account}: email: not an e-mail address: 'oops'" in text
    assert rep.subject() == "[usersync] WARNING: corp completed with warnings"


def test_blocked_report_says_why_and_counts_what_was_withheld():
    p = _changes()
    p.deletes.extend(Delete(100 + i, f"x{i}", f"x{i}", "EXAMPLE") for i in range(5))
    p.owned = 10
    verdict = check_plan(p, SafetySpec())
    rep = _report(p, verdict=verdict.to_json(),
                  failure={"step": "apply", "type": "UnsafePlan", "error": verdict.message, "traceback": "tb", "blocked": True})
    text = rep.render()
    assert rep.status == BLOCKED and rep.mail_kind(False) == "alarm"
    assert "BLOCKED by the mass-delete guard: 6 of the 10 users" in text
    assert "blocked 8" in text  # 1 insert + 1 update + 6 deletes withheld
    assert "changes (would be applied):" in text
    assert rep.subject() == "[usersync] ALARM: corp blocked by the mass-delete guard"


def test_failure_report_names_the_step_and_carries_masked_debug_information():
    tb = 'Traceback (most recent call last):\n  File "x.py"\nOperationalError: password=S3cret-Pw! rejected\n'
    rep = _report(failure={"step": "diff", "type": "OperationalError", "error": "password=S3cret-Pw! rejected",
                           "traceback": tb, "blocked": False})
    text = rep.render(secrets=["S3cret-Pw!"])
    assert rep.status == FAILED and rep.subject() == "[usersync] ALARM: corp failed at step diff"
    assert "failed at step: diff" in text and "error: OperationalError: password=*** rejected" in text
    assert "debug information" in text and 'File "x.py"' in text
    assert "S3cret-Pw!" not in text


def test_change_listing_is_capped_and_says_how_many_were_left_out():
    r = rules()
    p = plan(r, [record(i) for i in range(30)])
    text = _report(p, max_change_lines=10).render()
    assert text.count("+ insert") == 10
    assert "… 20 more change(s) left out (report.max_change_lines = 10)" in text


def test_dry_run_report_says_nothing_was_written_and_warns_about_a_would_be_block():
    p = _changes()
    p.owned = 2
    verdict = check_plan(p, SafetySpec())
    rep = _report(p, verdict=verdict.to_json())
    rep.dry_run = True
    text = rep.render()
    assert "DRY RUN (nothing written)" in text and "statistics (planned, dry run)" in text
    assert "would be BLOCKED" in text and "(dry run)" in rep.subject()


def test_a_clean_run_sends_mail_only_when_asked():
    rep = _report(_changes())
    assert rep.mail_kind(False) is None and rep.mail_kind(True) == "success"


def test_retention_removes_reports_older_than_the_limit(tmp_path):
    now = time.time()
    old = write_report("old", tmp_path, "corp", "r1", T0)
    recent = write_report("recent", tmp_path, "corp", "r2", T0 + timedelta(days=2))
    other = write_report("other source", tmp_path, "branch", "r3", T0)
    os.utime(old, (now - 16 * 86400, now - 16 * 86400))
    os.utime(recent, (now - 14 * 86400, now - 14 * 86400))
    os.utime(other, (now - 30 * 86400, now - 30 * 86400))
    assert prune_reports(tmp_path, "corp", 15, now) == [old]
    assert not old.exists() and recent.exists() and other.exists()
    assert recent.name == "20261129T023000Z_r2.txt"


def test_changes_left_out_by_apply_are_listed_and_make_a_warning():
    r = rules()
    p = plan(r, [record(1, givenName="New")], existing_rows(r, [record(1)]))
    report = _report(p, sections=[Conflicts(["user000001: update of first_name not applied: the user was changed …"] * 2,
                                            5)], reading="delta — entries changed since USN 41 (watermark of …)")
    text = report.render()
    assert report.status == WARNINGS
    assert "5 planned change(s) not applied: the users table changed during the run" in text
    assert "not applied (changed in the users table during the run):" in text
    assert text.count("! user000001: update of first_name not applied") == 2
    assert "… 3 more in the apply task's log" in text
    assert "read:     delta — entries changed since USN 41" in text


def test_a_blocked_draft_preview_is_not_told_to_approve_or_override():
    p = _changes()
    p.deletes.extend(Delete(100 + i, f"x{i}", f"x{i}", "EXAMPLE") for i in range(5))
    p.owned = 10
    verdict = check_plan(p, SafetySpec())
    rep = _report(p, verdict=verdict.to_json(), draft="corp.draft.yaml")
    rep.dry_run = True
    text = rep.render()
    assert "the mass-delete guard would BLOCK these rules live: 6 of the 10 users" in text
    assert "nothing to approve here" in text
    assert "allow_mass_delete" not in text and "Required Actions" not in text
    live = _report(p, verdict=verdict.to_json()).render()  # a live run's report keeps the advice
    assert "allow_mass_delete" in live


def test_a_feature_adds_its_section_without_the_report_knowing_it():
    """Write-back contributes its head, warnings and lines as a section; the report holds no write-back field."""
    done = {"dry_run": False, "planned": 3, "written": 1, "changed": 1, "failed": 1,
            "lines": ["! u2: ipPhone not written — insufficient access rights", "↑ u1: ipPhone '1' → '101'"], "more": 0}
    verdict = {"blocked": False, "message": "write-back guard passed: 3 value(s) to write back (limit: 500)"}
    report = _report(_changes(), sections=[WriteBack(done, verdict)])
    text = report.render()
    assert report.status == WARNINGS and "write_back" not in vars(report)
    assert "write-back: 1 written, 1 changed meanwhile (left), 1 failed — of 3 planned" in text
    assert "WARNING: 1 value(s) could not be written back to the directory" in text
    assert text.index("write-back guard passed") < text.index("WARNING:") < text.index("! u2: ipPhone not written")
    assert _report(_changes()).render().count("write-back") == 0
