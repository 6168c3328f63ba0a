"""Airflow's distributed topology, natively: PostgreSQL metadata, Redis broker, api-server, scheduler,
dag-processor, triggerer and two Celery workers as separate processes (devtools.airflow_cluster), driven only
through the REST API as an admin's script would. Covers the approval of blocked runs on the real scheduler path,
the users table's Asset, the reports page's authentication, and a clean shutdown by process group."""

from __future__ import annotations

import html
import time
from typing import Any

import httpx
import pytest

from tests.support.cluster import ADMINS, CONSUMER_DAG, USERS, Stack

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres):
    with Stack(tmp_path_factory.mktemp("distributed"), postgres, workers=2) as running:
        yield running


def _body(message) -> str:
    return html.unescape(message.get_body(("html", "plain")).get_content())


def _report(stack, dag_id, run_id) -> str:
    text = stack.report(dag_id, run_id)
    if stack.cluster.wait_run(dag_id, run_id)["state"] == "success":  # XCom holds it too (capped)
        assert stack.cluster.xcom(dag_id, run_id, "report") == text
    return text


def _hosts(stack, dag_id, run_id) -> set[str]:
    return {ti["hostname"] for ti in stack.cluster.task_instances(dag_id, run_id) if ti["hostname"]}


def _asset_events(stack, dag_id: str) -> list[dict]:
    assets = stack.cluster.api("GET", "/api/v2/assets?name_pattern=usersync_users__corp_target")["assets"]
    if not assets:  # apply's alias creates the asset with its first event
        return []
    assert [a["uri"] for a in assets] == ["usersync://corp_target/users"]
    events = stack.cluster.api("GET", f"/api/v2/assets/events?asset_id={assets[0]['id']}")["asset_events"]
    return [e for e in events if e["source_dag_id"] == dag_id]


def _consumer_runs(stack, count: int, timeout: float = 180) -> list[dict]:
    """The downstream DAG's finished runs (waits for ``count`` of them), each with the event extra it read."""
    c, deadline = stack.cluster, time.monotonic() + timeout
    while True:
        runs = c.api("GET", f"/api/v2/dags/{CONSUMER_DAG}/dagRuns")["dag_runs"]
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, f"{CONSUMER_DAG} ran {len(runs)} time(s), not {count}: {runs}"
        time.sleep(0.5)
    return [{"state": r["state"], "extra": c.xcom(CONSUMER_DAG, r["dag_run_id"], "provision")} for r in runs]


def _answer(stack, dag_id, run_id, option: str, as_user: str = "alice", task_id: str = "approve") -> Any:
    """An answer to the run's approval, by default from alice: the second approver (admin triggers the runs)."""
    return stack.cluster.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                             {"chosen_options": [option], "params_input": {}}, as_user=as_user,
                             ok=as_user == "alice")


def test_a_sync_triggered_through_the_rest_api_with_a_param_runs_on_both_celery_workers(stack):
    c = stack.cluster
    dry = c.trigger("user_sync__corp", {"dry_run": True})
    assert c.wait_run("user_sync__corp", dry)["state"] == "success"
    assert stack.users() == {}  # the Param reached the tasks: nothing written
    assert "mode:     DRY RUN" in _report(stack, "user_sync__corp", dry)
    assert _asset_events(stack, "user_sync__corp") == []  # a dry run announces nothing

    live = c.trigger("user_sync__corp")
    assert c.wait_run("user_sync__corp", live)["state"] == "success"
    assert len(stack.users()) == USERS
    summary = stack.summary("user_sync__corp", live)  # written by the report task into the shared run folder
    assert summary["status"] == "SUCCESS" and summary["counts"]["inserted"] == USERS
    assert f"inserted {USERS}" in _report(stack, "user_sync__corp", live)
    # the tasks of the two runs ran on both workers, and every worker read what another one wrote
    assert _hosts(stack, "user_sync__corp", dry) | _hosts(stack, "user_sync__corp", live) == {"worker1", "worker2"}
    (event,) = _asset_events(stack, "user_sync__corp")
    assert event["source_run_id"] == live and event["extra"]["inserted"] == USERS
    assert event["extra"]["source"] == "corp"
    # the downstream DAG scheduled on the users table ran on that event, and saw what was written
    assert _consumer_runs(stack, count=1)[0]["extra"]["inserted"] == USERS
    # the approval task was skipped: the guard passed
    assert c.task_state("user_sync__corp", live, "approve") == "skipped"
    # the scheduler's warm-up made the API server build its execution API before any task needed it
    assert "usersync warm-up: execution API at" in (c.home / "scheduler.log").read_text(errors="replace")


def test_a_blocked_run_waits_for_approval_and_applies_once_approved_through_the_api(stack):
    c = stack.cluster
    for i in range(10):  # 10 of 30 = 33% > 20%
        stack.ldap.delete_user(i)
    stack.ldap.add_user(90)
    stack.mail.messages.clear()
    before = stack.users()

    run_id = c.trigger("user_sync__corp")
    assert c.wait_task("user_sync__corp", run_id, "approve", {"awaiting_input"}) == "awaiting_input"
    assert stack.users() == before  # nothing written while waiting, not even the insert
    detail = c.api("GET", f"/api/v2/dags/user_sync__corp/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails")
    assert detail["subject"] == "usersync: approve removing 10 users from corp?"
    body = detail["body"]
    assert "**10 of the 30 users**" in body and "(**33.3%**)" in body and "allows 500 users and 20%" in body
    assert "delete user000000 (EXAMPLE\\user000000)" in body and "Full change set:" in body
    (mail,) = [m for m in stack.mail.messages if "APPROVAL NEEDED" in m["Subject"]]
    assert mail["Subject"] == "[usersync] APPROVAL NEEDED: approve removing 10 users from corp?"
    assert mail["To"] == ADMINS[0]
    text = _body(mail)
    assert f"{c.url}/dags/user_sync__corp/runs/{run_id}/tasks/approve/required_actions" in text
    assert "10 of the 30 users" in text
    # the rules' notify channels got the same request, with the button to answer it
    (slack,) = [m for m in stack.hooks.received["slack"] if m["text"].startswith("APPROVAL NEEDED")]
    assert slack["text"].startswith("APPROVAL NEEDED: approve removing 10 users from corp?\n10 of the 30 users")
    required_actions = f"{c.url}/dags/user_sync__corp/runs/{run_id}/tasks/approve/required_actions"
    assert required_actions in slack["blocks"][-1]["elements"][0]["url"]
    (teams,) = [m for m in stack.hooks.received["teams"]
                if m["attachments"][0]["content"]["body"][0]["text"].startswith("APPROVAL NEEDED")]
    assert required_actions in teams["attachments"][0]["content"]["actions"][0]["url"]
    summary = stack.summary("user_sync__corp", run_id)  # the reports page lists the waiting run
    assert summary["status"] == "WAITING FOR APPROVAL" and summary["counts"]["deleted"] == 10

    assert detail["assigned_users"] == [{"id": "alice", "name": "alice"}]  # the approvers less who triggered
    own = _answer(stack, "user_sync__corp", run_id, "Approve", as_user="admin")  # four eyes: refused
    assert own.status_code == 403 and "not a respondent" in own.text
    assert c.task_state("user_sync__corp", run_id, "approve") == "awaiting_input" and stack.users() == before
    answer = _answer(stack, "user_sync__corp", run_id, "Approve")
    assert answer["chosen_options"] == ["Approve"]
    assert c.wait_run("user_sync__corp", run_id)["state"] == "success"
    after = stack.users()
    assert len(after) == USERS - 10 + 1 and "user000090" in after and "user000000" not in after
    report = _report(stack, "user_sync__corp", run_id)
    assert "mass-delete guard lifted for this run, approved by alice" in report
    assert "approval: approved by alice at 20" in report
    assert stack.summary("user_sync__corp", run_id)["approval"]["by"] == "alice"


def test_a_field_cleared_on_most_users_waits_for_approval_with_samples_and_applies_once_approved(stack):
    """The change guard on the real scheduler path: a department cleared on 13 of the 21 users (a renamed
    attribute) waits in Required Actions with the field, the share and sample changes; approved, it applies."""
    c = stack.cluster
    before = stack.users()
    cleared = sorted(before)[:13]
    for name in cleared:
        stack.ldap.modify_user(int(name[4:]), department=None)
    run_id = c.trigger("user_sync__corp")
    assert c.wait_task("user_sync__corp", run_id, "approve", {"awaiting_input"}) == "awaiting_input"
    assert stack.users() == before
    detail = c.api("GET", f"/api/v2/dags/user_sync__corp/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails")
    assert detail["subject"] == ("usersync: approve the run of corp? department cleared for 13 of the 21 users "
                                 "(61.9%; limit 30%)")
    body = detail["body"]
    assert "**The change guard stopped this run:**" in body
    assert f"- `department — {cleared[0]}: " in body and " → (empty)`" in body
    _answer(stack, "user_sync__corp", run_id, "Approve")
    assert c.wait_run("user_sync__corp", run_id)["state"] == "success"
    after = stack.users()
    assert set(after) == set(before)
    for name, row in after.items():
        expected = {**before[name], "department": None} if name in cleared else before[name]
        assert {k: v for k, v in row.items() if k != "updated_at"} == \
            {k: v for k, v in expected.items() if k != "updated_at"}, name
    assert "change guard lifted for this run, approved by alice" in _report(stack, "user_sync__corp", run_id)


def test_a_rejected_run_writes_nothing_ends_blocked_and_alarms(stack):
    c = stack.cluster
    for i in range(10, 20):  # 10 of the 21 left
        stack.ldap.delete_user(i)
    stack.mail.messages.clear()
    before = stack.users()
    # bob may trigger runs but is no approver: his allow_mass_delete is not honoured, the run waits all the same
    run_id = c.trigger("user_sync__corp", {"allow_mass_delete": True}, as_user="bob")
    c.wait_task("user_sync__corp", run_id, "approve", {"awaiting_input"})
    assert stack.users() == before
    _answer(stack, "user_sync__corp", run_id, "Reject")
    assert c.wait_run("user_sync__corp", run_id)["state"] == "failed"
    assert ("allow_mass_delete was not honoured: 'bob' who triggered the run is not among approvals.approvers"
            in _report(stack, "user_sync__corp", run_id))
    assert stack.users() == before
    assert c.task_state("user_sync__corp", run_id, "apply") == "upstream_failed"
    assert stack.summary("user_sync__corp", run_id)["status"] == "BLOCKED"
    alarm = [m for m in stack.mail.messages if "ALARM" in m["Subject"]]
    assert [m["Subject"] for m in alarm] == ["[usersync] ALARM: corp blocked by the mass-delete guard"]
    body = _body(alarm[0])
    assert "approval: rejected by alice at 20" in body and "nothing was written" in body
    assert "blocked at step: approve" in body


def test_an_approval_nobody_answers_times_out_as_blocked(stack):
    c = stack.cluster
    first = c.trigger("user_sync__quick")  # the quick source imports what the directory holds now
    assert c.wait_run("user_sync__quick", first)["state"] == "success"
    imported = stack.users("quick")
    for i in range(20, 26):  # 6 of 17 = 35%
        stack.ldap.delete_user(i)
    run_id = c.trigger("user_sync__quick")
    c.wait_task("user_sync__quick", run_id, "approve", {"awaiting_input"})
    waited = time.monotonic()
    assert c.wait_run("user_sync__quick", run_id, timeout=120)["state"] == "failed"
    assert time.monotonic() - waited > 5  # it waited for the timeout (14.4 s), it did not fail at once
    assert stack.users("quick") == imported
    assert "approval: no answer within 0.004 h: nothing was written" in _report(stack, "user_sync__quick", run_id)


def test_the_reports_page_shows_nothing_without_an_airflow_login(stack):
    c = stack.cluster
    for path in ("/usersync/docs", "/usersync/redoc", "/usersync/openapi.json"):  # no schema or docs routes at all
        assert httpx.get(f"{c.url}{path}", timeout=30).status_code == 404
        assert httpx.get(f"{c.url}{path}", headers={"Authorization": f"Bearer {c.token}"}, timeout=30).status_code == 404
    for path in ("/usersync/reports", "/usersync/api/runs"):
        anonymous = httpx.get(f"{c.url}{path}", timeout=30)
        assert anonymous.status_code == 401 and "user_sync__" not in anonymous.text and "user0000" not in anonymous.text
        forged = httpx.get(f"{c.url}{path}", headers={"Authorization": "Bearer not-a-token"}, timeout=30)
        assert forged.status_code in (401, 403) and "user_sync__" not in forged.text
        cookie = httpx.get(f"{c.url}{path}", cookies={"_token": "forged"}, timeout=30)
        assert cookie.status_code in (401, 403) and "user_sync__" not in cookie.text
    runs = c.api("GET", "/usersync/api/runs")
    corp = runs["user_sync__corp"]
    assert [r["status"] for r in corp][-3:] == ["SUCCESS", "SUCCESS", "BLOCKED"]  # approved removal, approved change
    folder = corp[-3]["folder"]
    report = httpx.get(f"{c.url}/usersync/runs/user_sync__corp/{folder}/report.txt", timeout=30)
    assert report.status_code == 401 and "usersync report" not in report.text
    auth = {"Authorization": f"Bearer {c.token}"}
    report = httpx.get(f"{c.url}/usersync/runs/user_sync__corp/{folder}/report.txt", headers=auth, timeout=30)
    assert report.status_code == 200 and "approval: approved by alice" in report.text
    changes = httpx.get(f"{c.url}/usersync/runs/user_sync__corp/{folder}/changes.csv", headers=auth, timeout=30)
    lines = changes.text.splitlines()
    assert lines[0] == "change,username,ad_username,domain,field,old,new,reason"
    assert sum(1 for line in lines if line.startswith("delete,")) == 10
    assert any(line.startswith("insert,user000090,") for line in lines)
    page = httpx.get(f"{c.url}/usersync/reports", headers=auth, timeout=30).text
    assert "user_sync__corp" in page and "user_sync__quick" in page and "<svg" in page


def test_run_paths_that_climb_out_of_the_run_data_or_hide_are_refused(stack):
    """Dot segments (encoded or not), hidden names and absolute paths never reach a file: 404, nothing served —
    shown with a report.txt planted where each of them would lead."""
    c = stack.cluster
    auth = {"Authorization": f"Bearer {c.token}"}
    dry = c.trigger("user_sync__corp", {"dry_run": True})
    assert c.wait_run("user_sync__corp", dry)["state"] == "success"
    folder = next(r["folder"] for r in c.api("GET", "/usersync/api/runs")["user_sync__corp"] if r["run_id"] == dry)
    data = stack.run_data
    planted = [data.parent.parent / "report.txt", data / "report.txt",
               data / "user_sync__corp" / ".hidden" / "report.txt", data / "summary.json"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("PLANTED outside a run folder\n")
    try:
        for path in ("/usersync/runs/%2E%2E/%2E%2E/report.txt", "/usersync/runs/user_sync__corp/%2E%2E/report.txt",
                     "/usersync/runs/user_sync__corp/%2E/report.txt", "/usersync/runs/user_sync__corp/.hidden/report.txt",
                     "/usersync/runs/.hidden/x/report.txt", f"/usersync/runs/%2E%2E/{folder}/report.txt",
                     f"/usersync/runs/{data.as_posix().replace('/', '%2F')}/x/report.txt",
                     "/usersync/runs/user_sync__corp/%2E%2E/changes.csv",
                     "/usersync/runs/%2E%2E/%2E%2E/explanation.txt"):
            answer = httpx.get(f"{c.url}{path}", headers=auth, timeout=30)
            assert answer.status_code == 404, (path, answer.status_code, answer.text)
            assert "PLANTED" not in answer.text
        good = httpx.get(f"{c.url}/usersync/runs/user_sync__corp/{folder}/report.txt", headers=auth, timeout=30)
        assert good.status_code == 200 and "usersync report" in good.text  # the real one still answers
    finally:
        for path in planted:
            path.unlink()


def test_a_blocked_run_answered_keep_them_as_local_users_detaches_them_and_applies_the_rest(stack):
    """The third answer, on the scheduler path: the users the run would remove become local users (AD username,
    Domain and owner cleared, nothing else of theirs changed); the rest of the change set applies."""
    c = stack.cluster
    stack.ldap.add_user(91)  # the rest of the change set: one insert
    before = stack.users()
    # deleted in the directory by the tests above (the rejected run's 10, the quick source's 6)
    leaving = {n for n in before if n != "user000090" and 10 <= int(n[4:]) < 26}
    assert len(leaving) == 16
    run_id = c.trigger("user_sync__corp")
    c.wait_task("user_sync__corp", run_id, "approve", {"awaiting_input"})
    detail = c.api("GET", f"/api/v2/dags/user_sync__corp/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails")
    assert detail["options"] == ["Approve", "Reject", "Keep them as local users"]
    assert "**Keep them as local users**" in detail["body"]
    assert stack.users() == before
    answer = _answer(stack, "user_sync__corp", run_id, "Keep them as local users")
    assert answer["chosen_options"] == ["Keep them as local users"]
    assert c.wait_run("user_sync__corp", run_id)["state"] == "success"
    after = stack.users()
    assert set(after) == set(before) | {"user000091"}
    for name in leaving:
        old, new = before[name], after[name]
        assert (new["ad_username"], new["domain"], new["source"]) == (None, None, None)
        assert {k for k in old if old[k] != new[k]} == {"ad_username", "domain", "source", "updated_at"}, name
    assert all(after[n] == before[n] for n in before if n not in leaving)
    report = _report(stack, "user_sync__corp", run_id)
    assert "approval: answered 'Keep them as local users' by alice at 20" in report
    assert "detached (now local users" in report and "inserted 1" in report and "deleted 0" in report
    counts = stack.summary("user_sync__corp", run_id)["counts"]
    assert (counts["detached"], counts["deleted"], counts["inserted"]) == (16, 0, 1)


def _faxes(stack) -> dict[str, list[str]]:
    with stack.ldap.admin() as conn:
        conn.search("DC=example,DC=test", "(objectClass=user)", attributes=["sAMAccountName", "facsimileTelephoneNumber"])
        return {str(e.sAMAccountName).lower(): list(e.facsimileTelephoneNumber.values) for e in conn.entries}


def test_a_write_back_wave_over_its_limit_waits_for_approval_and_is_written_once_approved(stack):
    from sqlalchemy import create_engine, update

    from usersync.core.users_table import users

    c = stack.cluster
    first = c.trigger("user_sync__wbk")
    assert c.wait_run("user_sync__wbk", first)["state"] == "success"
    chosen = sorted(stack.users("wbk"))[:3]
    engine = create_engine(stack.users_urls["wbk"])
    with engine.begin() as conn:  # an admin assigns fax numbers in the application
        for n, username in enumerate(chosen):
            conn.execute(update(users).where(users.c.username == username).values(fax_number=f"+39 0461 99{n}"))
    engine.dispose()
    before = _faxes(stack)
    assert all(before[u] == [] for u in chosen)

    run_id = c.trigger("user_sync__wbk")
    assert c.wait_task("user_sync__wbk", run_id, "approve_write_back", {"awaiting_input"}) == "awaiting_input"
    assert _faxes(stack) == before  # nothing written while waiting
    detail = c.api("GET", f"/api/v2/dags/user_sync__wbk/dagRuns/{run_id}/taskInstances/approve_write_back/-1/hitlDetails")
    assert detail["options"] == ["Approve", "Reject"]
    assert detail["subject"] == "usersync: approve writing 3 values back to wbk?"
    assert "**3 values**" in detail["body"] and "guard allows 2" in detail["body"]
    assert f"{chosen[0]}: facsimileTelephoneNumber (empty) → '+39 0461 990'" in detail["body"]

    _answer(stack, "user_sync__wbk", run_id, "Approve", task_id="approve_write_back")
    assert c.wait_run("user_sync__wbk", run_id)["state"] == "success"
    assert {u: _faxes(stack)[u] for u in chosen} == {u: [f"+39 0461 99{n}"] for n, u in enumerate(chosen)}
    report = _report(stack, "user_sync__wbk", run_id)
    assert "write-back guard lifted for this run, approved by alice: 3 value(s) to write back (limit: 2)" in report
    assert "approval of the write-back: approved by alice at 20" in report
    assert "write-back: 3 written, 0 changed meanwhile (left), 0 failed — of 3 planned" in report


def test_a_run_undone_through_the_api_waits_for_approval_and_puts_the_table_back(stack):
    """Undo on the scheduler path: a dry undo writes nothing; the live one removes 12 users, so the mass-delete
    guard asks; approved, the users table is the one before the undone run (bookkeeping aside), and each user's
    history (the JSON API) says what happened and who approved."""
    c, dag = stack.cluster, "user_sync__corp"
    assert c.wait_run(dag, c.trigger(dag))["state"] == "success"  # in step with the directory, whatever ran before
    for i in range(70, 82):  # 12 new: their removal is over 20 % of what corp owns, whatever ran before
        stack.ldap.add_user(i)
    stack.ldap.modify_user(28, department="Board")  # 0–25 were deleted or detached by the tests above
    before = stack.users()
    run_id = c.trigger(dag)
    assert c.wait_run(dag, run_id)["state"] == "success"
    done = stack.users()
    assert len(done) == len(before) + 12 and done["user000028"]["department"] == "Board"

    dry = c.trigger(dag, {"undo_run": run_id, "dry_run": True})
    assert c.wait_run(dag, dry)["state"] == "success" and stack.users() == done
    assert f"undo of run {run_id}: 0 deleted user(s) restored, 1 put back as they were, 12 inserted user(s) deleted" \
        in _report(stack, dag, dry)
    undo = c.trigger(dag, {"undo_run": run_id})
    assert c.wait_task(dag, undo, "approve", {"awaiting_input"}) == "awaiting_input"
    assert stack.users() == done
    _answer(stack, dag, undo, "Approve")
    assert c.wait_run(dag, undo)["state"] == "success"
    strip = lambda rows: {u: {k: v for k, v in r.items() if k != "updated_at"} for u, r in rows.items()}  # noqa: E731
    assert strip(stack.users()) == strip(before)

    events = c.api("GET", "/usersync/api/history?q=user000070")["events"]
    assert [(e["run_id"], e["action"]) for e in events] == [(run_id, "inserted"), (undo, "deleted")]
    assert events[1]["approved_by"].startswith("approved by alice at ") and \
        events[1]["detail"]["note"] == f"undo of run {run_id}"
    board = c.api("GET", "/usersync/api/history?q=EXAMPLE%5Cuser000028")["events"]
    assert [(e["run_id"], e["detail"]["changes"]["department"][1]) for e in board[-2:]] == [
        (run_id, "Board"), (undo, before["user000028"]["department"])]
    assert httpx.get(f"{c.url}/usersync/api/history?q=user000070", timeout=30).status_code == 401


def test_stopping_the_cluster_leaves_no_process(stack):
    c = stack.cluster
    assert len(c.procs) == 6 and c.group_members()  # api-server, scheduler, dag-processor, triggerer, 2 workers
    started = time.monotonic()
    c.stop()
    assert c.group_members() == []
    print(f"cluster stopped in {time.monotonic() - started:.1f} s (started in {c.startup_seconds:.1f} s)")
