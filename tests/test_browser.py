"""The admin's path in a real browser (headless Chromium) against the native distributed Airflow: log in, open
the reports page, see a real run's report, download it, see the chart; trigger a dry run from the trigger form;
sync one account as a dry run from the form and read its explanation; approve a blocked run from Required
Actions, or answer it "Keep them as local users"; search a user's history and undo a run from its timeline;
decide cases in the cases page and the API, and apply them with the page's run button; see a quarantined source
and release it.
A screenshot of each step is kept (tests/browser.py)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import Browser
from tests.support.cluster import USERS, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
DAG = "user_sync__corp"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres):
    with Stack(tmp_path_factory.mktemp("browser"), postgres, workers=1) as running:
        first = running.cluster.trigger(DAG)
        assert running.cluster.wait_run(DAG, first)["state"] == "success"
        running.first_run = first
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"), tmp_path_factory.mktemp("downloads"))
    yield b
    b.quit()


def _click_text(browser, text: str, tag: str = "*"):
    browser.driver.find_element(By.XPATH, f"//{tag}[normalize-space(text())={text!r}]").click()


def test_log_in(stack, browser):
    d = browser.driver
    d.get(f"{stack.cluster.url}/")
    browser.wait_for(lambda: "/auth/login" in d.current_url, what="login page")
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys(stack.cluster.password)
    browser.shot("login")
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait_for(lambda: "/auth/login" not in d.current_url and d.get_cookie("_token"), what="logged-in page")
    browser.wait_for(lambda: d.find_elements(By.XPATH, "//*[text()='Browse']"), what="navigation")
    browser.shot("home")


def test_the_reports_page_shows_a_real_run_its_chart_and_downloads_its_report(stack, browser):
    d = browser.driver
    _click_text(browser, "Browse")
    _click_text(browser, "User sync reports")  # the entry the plugin adds to the navigation
    browser.wait_for(lambda: "/plugin/usersync-reports" in d.current_url, what="plugin page")
    frame = d.find_element(By.TAG_NAME, "iframe")
    assert frame.get_attribute("src").endswith("/usersync/reports")
    d.switch_to.frame(frame)
    try:
        row = d.find_element(By.CSS_SELECTOR, f"tr.run[data-run-id='{stack.first_run}']")
        assert "SUCCESS" in row.text and f"{USERS}" in row.text
        bars = d.find_elements(By.CSS_SELECTOR, f"section#{DAG} svg.chart rect.inserted")
        assert len(bars) == 1 and float(bars[0].get_attribute("height")) > 100  # the 30 inserts, full height
        browser.shot("reports-page")
        row.find_element(By.LINK_TEXT, "download").click()
        report = browser.wait_for(lambda: [p for p in browser.downloads.glob("*.txt")], what="downloaded report")[0]
        text = report.read_text()
        assert text.startswith("usersync report — source corp") and stack.first_run in text
        assert f"inserted {USERS}" in text
        row = d.find_element(By.CSS_SELECTOR, f"tr.run[data-run-id='{stack.first_run}']")
        row.find_element(By.LINK_TEXT, "report").click()  # opens in the frame, as text
        browser.wait_for(lambda: "status:   SUCCESS" in d.find_element(By.TAG_NAME, "body").text, what="report text")
        browser.shot("report-opened")
    finally:
        d.switch_to.default_content()


def test_a_dry_run_triggered_from_the_trigger_form(stack, browser):
    d = browser.driver
    before = stack.users()
    d.get(f"{stack.cluster.url}/dags/{DAG}")
    d.find_element(By.XPATH, "//button[@aria-label='Trigger Dag']").click()
    dialog = browser.wait_for(lambda: [e for e in d.find_elements(By.CSS_SELECTOR, "[role=dialog]")
                                       if "Run Parameters" in e.text], what="trigger form")[0]
    assert "Write nothing: read, compare and report" in dialog.text  # the form says what a dry run does
    assert "waits for an admin's approval" in dialog.text
    dialog.find_element(By.CSS_SELECTOR, "[id='switch:element_dry_run']").click()
    browser.wait_for(lambda: d.find_element(By.NAME, "element_dry_run").is_selected(), what="dry run switched on")
    browser.shot("trigger-form-dry-run")
    dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Trigger']").click()
    runs = browser.wait_for(lambda: [r for r in stack.cluster.api("GET", f"/api/v2/dags/{DAG}/dagRuns")["dag_runs"]
                                     if r["conf"].get("dry_run") is True], what="the triggered run")
    assert stack.cluster.wait_run(DAG, runs[0]["dag_run_id"])["state"] == "success"
    assert "mode:     DRY RUN (nothing written)" in stack.report(DAG, runs[0]["dag_run_id"])
    assert stack.users() == before
    browser.shot("dry-run-done")


def test_a_single_account_dry_run_from_the_form_and_its_explanation_on_the_reports_page(stack, browser):
    d = browser.driver
    stack.ldap.modify_user(5, department="Board")
    before = stack.users()
    d.get(f"{stack.cluster.url}/dags/{DAG}")
    d.find_element(By.XPATH, "//button[@aria-label='Trigger Dag']").click()
    dialog = browser.wait_for(lambda: [e for e in d.find_elements(By.CSS_SELECTOR, "[role=dialog]")
                                       if "Run Parameters" in e.text], what="trigger form")[0]
    assert "Sync only this account" in dialog.text and "deletes nobody" in dialog.text
    assert "A dry run with corp.draft.yaml instead of the live rules" in dialog.text
    dialog.find_element(By.NAME, "element_account").send_keys("user000005")
    dialog.find_element(By.CSS_SELECTOR, "[id='switch:element_dry_run']").click()
    browser.wait_for(lambda: d.find_element(By.NAME, "element_dry_run").is_selected(), what="dry run switched on")
    browser.shot("trigger-form-one-account")
    dialog.find_element(By.XPATH, ".//button[normalize-space(.)='Trigger']").click()
    runs = browser.wait_for(lambda: [r for r in stack.cluster.api("GET", f"/api/v2/dags/{DAG}/dagRuns")["dag_runs"]
                                     if r["conf"].get("account") == "user000005"], what="the triggered run")
    run_id = runs[0]["dag_run_id"]
    assert stack.cluster.wait_run(DAG, run_id)["state"] == "success"
    assert stack.users() == before
    d.get(f"{stack.cluster.url}/plugin/usersync-reports")
    d.switch_to.frame(d.find_element(By.TAG_NAME, "iframe"))
    try:
        row = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"tr.run[data-run-id='{run_id}']"),
                               what="the run's row")[0]
        assert "account user000005" in row.text
        browser.shot("reports-one-account")
        row.find_element(By.LINK_TEXT, "explanation").click()
        text = browser.wait_for(lambda: "6. outcome" in (t := d.find_element(By.TAG_NAME, "body").text) and t,
                                what="the explanation")
        assert "explanation of account 'user000005'" in text and "department: 'Board'" in text
        assert "result: dry run: would update the user as planned above; nothing written" in text
        browser.shot("explanation-one-account")
    finally:
        d.switch_to.default_content()


def test_a_blocked_run_approved_from_required_actions(stack, browser):
    d = browser.driver
    for i in range(10):
        stack.ldap.delete_user(i)
    run_id = stack.cluster.trigger(DAG, as_user="alice")  # four eyes: the admin approves another's run
    stack.cluster.wait_task(DAG, run_id, "approve", {"awaiting_input"})
    d.get(f"{stack.cluster.url}/required_actions")
    d.find_element(By.XPATH, "//*[text()='usersync: approve removing 10 users from corp?']").click()
    browser.wait_for(lambda: "/tasks/approve/required_actions" in d.current_url, what="the request")
    body = browser.wait_for(lambda: "10 of the 30 users" in (t := d.find_element(By.TAG_NAME, "body").text) and t,
                            what="the request's text")
    assert "delete user000000" in body and "Approve" in body
    browser.shot("required-action")
    d.find_element(By.XPATH, "//button[normalize-space(.)='Approve']").click()
    assert stack.cluster.wait_run(DAG, run_id)["state"] == "success"
    assert len(stack.users()) == USERS - 10
    assert "approval: approved by admin at" in stack.report(DAG, run_id)
    d.get(f"{stack.cluster.url}/plugin/usersync-reports")
    d.switch_to.frame(d.find_element(By.TAG_NAME, "iframe"))
    try:
        row = d.find_element(By.CSS_SELECTOR, f"tr.run[data-run-id='{run_id}']")
        assert "SUCCESS" in row.text
        assert len(d.find_elements(By.CSS_SELECTOR, f"section#{DAG} svg.chart rect.deleted")) == 1
        browser.shot("reports-after-approval")
    finally:
        d.switch_to.default_content()


def test_a_blocked_run_answered_keep_them_as_local_users_from_required_actions(stack, browser):
    d = browser.driver
    for i in range(10, 20):  # 10 of the 20 left
        stack.ldap.delete_user(i)
    before = stack.users()
    run_id = stack.cluster.trigger(DAG, as_user="alice")
    stack.cluster.wait_task(DAG, run_id, "approve", {"awaiting_input"})
    # the link the waiting-for-approval mail carries (the list also holds the answered request of the same subject)
    d.get(f"{stack.cluster.url}/dags/{DAG}/runs/{run_id}/tasks/approve/required_actions")
    browser.wait_for(lambda: "10 of the 20 users" in d.find_element(By.TAG_NAME, "body").text, what="the request")
    button = browser.wait_for(lambda: d.find_elements(By.XPATH, "//button[normalize-space(.)='Keep them as local users']"),
                              what="the third answer")[0]
    browser.shot("required-action-keep-local")
    button.click()
    assert stack.cluster.wait_run(DAG, run_id)["state"] == "success"
    after = stack.users()
    assert set(after) == set(before)
    for name, old in before.items():
        changed = {k for k in old if old[k] != after[name][k]}
        if 10 <= int(name[4:]) < 20:  # local users now; nothing else of theirs changed
            assert changed == {"ad_username", "domain", "source", "updated_at"} and after[name]["source"] is None
        else:
            assert changed == set(), name
    assert "approval: answered 'Keep them as local users' by admin" in stack.report(DAG, run_id)
    d.get(f"{stack.cluster.url}/plugin/usersync-reports")
    d.switch_to.frame(d.find_element(By.TAG_NAME, "iframe"))
    try:
        row = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"tr.run[data-run-id='{run_id}']"),
                               what="the run's row")[0]
        assert row.find_element(By.CSS_SELECTOR, "td.detached").text == "10"
        browser.shot("reports-after-keep-local")
    finally:
        d.switch_to.default_content()


def test_a_users_history_searched_and_its_run_undone_from_the_timeline(stack, browser):
    d = browser.driver
    for i in range(50, 58):  # 8 new users: removing them again is over 20 % of what corp owns now
        stack.ldap.add_user(i)
    before = stack.users()
    run_id = stack.cluster.trigger(DAG)
    assert stack.cluster.wait_run(DAG, run_id)["state"] == "success"
    assert len(stack.users()) == len(before) + 8
    d.get(f"{stack.cluster.url}/plugin/usersync-reports")
    d.switch_to.frame(d.find_element(By.TAG_NAME, "iframe"))
    try:  # the run's row offers the undo too
        row = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"tr.run[data-run-id='{run_id}']"),
                               what="the run's row")[0]
        assert row.find_elements(By.CSS_SELECTOR, "form.undo button")
        d.find_element(By.NAME, "q").send_keys("user000050")  # the page's search box
        d.find_element(By.XPATH, "//button[normalize-space(.)='history']").click()
        rows = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "table.timeline tr.event"),
                                what="the timeline")
        assert [r.get_attribute("class") for r in rows] == ["event inserted"] and run_id in rows[0].text
        browser.shot("history-before-undo")
        form = rows[0].find_element(By.CSS_SELECTOR, "form.undo")
        form.find_element(By.NAME, "dry_run").click()  # ticked by default: a live undo
        form.find_element(By.XPATH, ".//button[normalize-space(.)='undo this run']").click()
        browser.wait_for(lambda: "triggered run" in d.find_element(By.TAG_NAME, "body").text, what="triggered")
        undo = d.find_element(By.CSS_SELECTOR, "p.triggered").text.split()[2].rstrip(":")
    finally:
        d.switch_to.default_content()
    assert stack.cluster.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{undo}")["conf"] == {"undo_run": run_id,
                                                                                         "dry_run": False}
    stack.cluster.wait_task(DAG, undo, "approve", {"awaiting_input"})  # it removes 8 users: the guard asks
    stack.cluster.api("PATCH", f"/api/v2/dags/{DAG}/dagRuns/{undo}/taskInstances/approve/-1/hitlDetails",
                      {"chosen_options": ["Approve"], "params_input": {}}, as_user="alice")
    assert stack.cluster.wait_run(DAG, undo)["state"] == "success"
    strip = lambda rows: {u: {k: v for k, v in r.items() if k != "updated_at"} for u, r in rows.items()}  # noqa: E731
    assert strip(stack.users()) == strip(before)

    d.get(f"{stack.cluster.url}/usersync/history?q=user000050")
    rows = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "table.timeline tr.event"), what="the timeline")
    assert [r.get_attribute("class") for r in rows] == ["event inserted", "event deleted"]
    assert undo in rows[1].text and "approved by alice" in rows[1].text and f"undo of run {run_id}" in rows[1].text
    browser.shot("history-after-undo")
    rows[0].find_element(By.LINK_TEXT, run_id).click()
    browser.wait_for(lambda: "status:   SUCCESS" in d.find_element(By.TAG_NAME, "body").text, what="the run's report")


def test_cases_decided_in_the_page_and_the_api_are_applied_by_the_run_the_page_triggers(stack, browser):
    """Onboarding: accounts back in the directory whose local users (detached earlier) match by name are proposed;
    one confirmed and one rejected in the page, one confirmed through the API; the page's run applies them."""
    import httpx
    import yaml

    d, c = browser.driver, stack.cluster
    rules_path = stack.tmp / "rules" / "corp.yaml"
    data = yaml.safe_load(rules_path.read_text())
    rules_path.write_text(yaml.safe_dump({**data, "match": [{"by": "name", "level": "propose"}]}))
    for i in range(50, 58):  # the users the undo above removed leave the directory too
        stack.ldap.delete_user(i)
    for i in (10, 11, 12):  # their users are local users now (answered "Keep them as local users" above)
        stack.ldap.add_user(i)
    before = stack.users()
    run_id = c.trigger(DAG)
    assert c.wait_run(DAG, run_id)["state"] == "success"
    assert stack.users() == before  # proposals wait: nothing inserted, nothing linked
    found = {x["username"]: x for x in c.api("GET", "/usersync/api/cases?source=corp")["cases"]}
    assert set(found) == {"user000010", "user000011", "user000012"}
    assert {x["detail"]["candidates"][0]["id"] for x in found.values()} == \
        {before[f"user0000{i}"]["id"] for i in (10, 11, 12)}

    d.get(f"{c.url}/usersync/cases?source=corp")
    browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "form.bulk button[value='reject']"),
                     what="the bulk form")[0].click()  # nothing ticked: said on the page, nothing decided
    browser.wait_for(lambda: "no case ticked" in d.find_element(By.TAG_NAME, "body").text, what="no case ticked")
    assert {x["status"] for x in c.api("GET", "/usersync/api/cases?source=corp")["cases"]} == {"open"}
    for name, decision in (("user000010", "confirm"), ("user000011", "reject")):
        row = browser.wait_for(lambda n=name: d.find_elements(By.CSS_SELECTOR, f"tr.case[data-case-id='{found[n]['id']}']"),
                               what=f"the case of {name}")[0]
        assert "Smith" in row.text and "name: propose" in row.text  # the two sides, and why they were matched
        if name == "user000010":
            browser.shot("cases-page")
        row.find_element(By.CSS_SELECTOR, f"form.decide button[value='{decision}']").click()
        browser.wait_for(lambda: "1 case(s) decided" in d.find_element(By.TAG_NAME, "body").text, what="decided")
    answer = c.api("POST", "/usersync/api/cases/decide", {"source": "corp", "ids": [found["user000012"]["id"]],
                                                          "decision": "confirm"})
    assert answer == {"results": {str(found["user000012"]["id"]): "ok"}}
    cookie = {"_token": c.token}
    forged = httpx.post(f"{c.url}/usersync/cases/decide", cookies=cookie, timeout=30, headers={"Origin": "http://evil.test"},
                        data={"source": "corp", "decision": "reject", "ids": found["user000012"]["id"], "token": "x"})
    assert forged.status_code == 403
    no_bearer = httpx.post(f"{c.url}/usersync/api/cases/decide", cookies=cookie, timeout=30,
                           json={"source": "corp", "ids": [found["user000012"]["id"]], "decision": "reject"})
    assert no_bearer.status_code == 403
    viewer = c.api("POST", "/usersync/api/cases/decide", {"source": "corp", "ids": [found["user000012"]["id"]],
                                                          "decision": "reject"}, ok=False, as_user="carol")
    assert viewer.status_code == 403 and "right to trigger" in viewer.text  # carol may read the DAG, not trigger it
    page = httpx.get(f"{c.url}/usersync/cases?source=corp", headers={"Authorization": f"Bearer {c.token_of('carol')}"},
                     timeout=30)
    assert page.status_code == 200 and page.text.count("data-case-id") == 3  # she sees the cases ...
    assert "form class='decide'" not in page.text and "cases/run" not in page.text  # ... and no button
    states = {x["username"]: (x["status"], x["decision"]) for x in c.api("GET", "/usersync/api/cases?source=corp")["cases"]}
    assert states == {"user000010": ("decided", "confirm"), "user000011": ("decided", "reject"),
                      "user000012": ("decided", "confirm")}

    d.get(f"{c.url}/usersync/cases?source=corp")
    browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "form.run button"), what="run now")[0].click()
    browser.wait_for(lambda: "triggered run" in d.find_element(By.TAG_NAME, "body").text, what="triggered")
    applied = d.find_element(By.CSS_SELECTOR, "p.triggered").text.split()[2].rstrip(":")
    assert c.wait_run(DAG, applied)["state"] == "success"
    after = stack.users()
    assert set(after) == set(before)  # the rejected account cannot be a new user: its username is the local user's
    for name, old in before.items():
        changed = {k for k in old if old[k] != after[name][k]}
        if name in ("user000010", "user000012"):  # linked: the same row, now owned by corp
            assert changed <= {"ad_username", "domain", "source", "external_id", "updated_at"} and \
                after[name]["source"] == "corp" and after[name]["id"] == old["id"], (name, changed)
        else:
            assert changed == set(), name
    final = {x["username"]: x for x in c.api("GET", "/usersync/api/cases?source=corp&status=all")["cases"]}
    assert {n: x["status"] for n, x in final.items()} == {"user000010": "closed", "user000011": "rejected",
                                                          "user000012": "closed"}
    d.get(f"{c.url}/usersync/cases?source=corp&status=all")
    browser.wait_for(lambda: "rejected, and not a new user either" in d.find_element(By.TAG_NAME, "body").text,
                     what="the rejected case's outcome")
    browser.shot("cases-after-run")


def _service_password(stack, password: str) -> None:
    """The directory's password for usersync's service account (the Airflow connection keeps the old one)."""
    import ldap3

    from devtools.slapd import SERVICE_DN

    with stack.ldap.admin() as conn:
        conn.modify(SERVICE_DN, {"userPassword": [(ldap3.MODIFY_REPLACE, [password])]})


def test_a_quarantined_source_shown_on_the_reports_page_released_there_and_healthy_after_the_fix(stack, browser):
    """The service account's password changes in the directory: the run fails and the source is quarantined at
    once; the reports page says since when, why, what clears it and the next try; the admin releases it there
    (a viewer has no button); the password restored, the next run is healthy."""
    import httpx

    d, c = browser.driver, stack.cluster
    c.wait_idle(DAG)  # a run still going would fail too and count as a second failure
    _service_password(stack, "Rotated-Elsewhere-1!")
    before = stack.users()
    failed = c.trigger(DAG)
    assert c.wait_run(DAG, failed)["state"] == "failed"
    assert stack.users() == before

    d.get(f"{c.url}/usersync/reports")
    banner = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"section#{DAG} div.health.quarantined"),
                              what="the quarantine banner")[0]
    text = banner.text
    assert "QUARANTINED since" in text and "after 1 failed run(s) in a row" in text and "SourceAuthError" in text
    assert "correct the password or certificate in the source's Airflow connection" in text
    assert "Next scheduled try:" in text and "a manual run always tries" in text
    browser.shot("reports-quarantined")
    viewer = httpx.get(f"{c.url}/usersync/reports", headers={"Authorization": f"Bearer {c.token_of('carol')}"},
                       timeout=30)
    assert viewer.status_code == 200 and "div class=\"health quarantined" in viewer.text
    assert "form class=\"release\"" not in viewer.text  # carol may read the DAG, not trigger it
    forged = httpx.post(f"{c.url}/usersync/release", cookies={"_token": c.token}, timeout=30,
                        headers={"Origin": "http://evil.test"}, data={"source": "corp", "token": "x"})
    assert forged.status_code == 403

    banner.find_element(By.CSS_SELECTOR, "form.release button").click()
    browser.wait_for(lambda: "corp released from quarantine" in d.find_element(By.TAG_NAME, "body").text,
                     what="released")
    healthy = d.find_element(By.CSS_SELECTOR, f"section#{DAG} div.health").text
    assert healthy.startswith("healthy") and "released from quarantine by admin" in healthy
    browser.shot("reports-released")

    _service_password(stack, stack.ldap.service_password)
    fixed = c.trigger(DAG)
    assert c.wait_run(DAG, fixed)["state"] == "success"
    assert stack.users() == before
    d.get(f"{c.url}/usersync/reports")
    healthy = browser.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"section#{DAG} div.health.ok"),
                               what="healthy again")[0].text
    assert "last success" in healthy and "QUARANTINED" not in d.find_element(By.TAG_NAME, "body").text
