"""Notices through the DAG (real slapd, Airflow's Slack and Apprise notifiers, usersync's Teams Workflows
notifier) to Slack-, Teams-Workflows- and Apprise-compatible endpoints on loopback: the alarm of a blocked run
arrives with its summary and the link to the report; a dead or refusing endpoint (Apprise's too) is logged and does
not fail the run."""

from __future__ import annotations

import pytest

from devtools.netutil import free_port
from tests.support.helpers import table_rows
from tests.support.rules import ad_rules
from tests.support.webhooks import Webhooks

pytestmark = pytest.mark.airflow


@pytest.fixture
def hooks():
    server = Webhooks().start()
    yield server
    server.stop()


def _setup(airflow_env, ldap, tmp_path, monkeypatch, hooks, notify, connections=None):
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.connection("corp_ldap", **ldap.connection_extra())
    for conn_id, fields in (connections or hooks.connections()).items():
        airflow_env.connection(conn_id, **fields)
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.users_db(url)
    data = ad_rules()
    data["safety"] = {"approve_blocked_runs": False}
    data["notify"] = notify
    airflow_env.rules(data)
    return url


def test_a_blocked_run_alarms_slack_teams_and_apprise_with_its_summary_and_the_report_link(
        airflow_env, make_slapd, tmp_path, monkeypatch, hooks, caplog):
    ldap = make_slapd(20)
    url = _setup(airflow_env, ldap, tmp_path, monkeypatch, hooks, [
        {"type": "slack", "conn_id": "ops_slack"}, {"type": "teams", "conn_id": "ops_teams"},
        {"type": "apprise", "conn_id": "ops_apprise", "on": ["alarm", "success"]}])
    assert airflow_env.run("user_sync__corp").state == "success"
    assert hooks.received["slack"] == [] and hooks.received["teams"] == []  # a clean run: alarms only
    (first,) = hooks.received["apprise"]  # the channel that asked for successes too
    assert first["title"] == "corp: sync completed" and "inserted 20" in first["message"]
    before = table_rows(url)
    for i in range(12):
        ldap.delete_user(i)

    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "failed" and table_rows(url) == before
    (slack,) = hooks.received["slack"]
    assert slack["text"].startswith("ALARM: corp blocked by the mass-delete guard\nstatus: BLOCKED")
    assert "BLOCKED by the mass-delete guard: 12 of the 20 users" in slack["text"]
    header, section, actions = slack["blocks"]
    assert header["text"]["text"] == "ALARM: corp blocked by the mass-delete guard"
    link = actions["elements"][0]["url"]
    assert link.startswith("http://") and "/usersync/runs/user_sync__corp/" in link and link.endswith("/report.txt")
    (teams,) = hooks.received["teams"]
    card = teams["attachments"][0]["content"]
    assert card["body"][0]["text"] == "ALARM: corp blocked by the mass-delete guard"
    assert any("12 of the 20 users" in block["text"] for block in card["body"][1:])
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the report", "url": link}]
    assert len(hooks.received["apprise"]) == 2 and "12 of the 20 users" in hooks.received["apprise"][1]["message"]
    assert "secret" not in repr(hooks.received) and ldap.service_password not in repr(hooks.received)
    assert "notified apprise through connection 'ops_apprise'" in caplog.text and "could not notify" not in caplog.text


def test_a_dead_or_refusing_endpoint_is_logged_and_never_fails_the_run(
        airflow_env, make_slapd, tmp_path, monkeypatch, hooks, caplog):
    ldap = make_slapd(5)
    dead = {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{free_port()}/services/T/B/X"}
    refusing = {"conn_type": "http", "password": hooks.url + "/workflows/unknown"}
    refusing_apprise = {"conn_type": "apprise",
                        "extra": {"config": [{"path": f"json://127.0.0.1:{hooks.port}/unknown"}]}}
    url = _setup(airflow_env, ldap, tmp_path, monkeypatch, hooks,
                 [{"type": "slack", "conn_id": "dead_slack", "on": ["success"]},
                  {"type": "teams", "conn_id": "refusing_teams", "on": ["success"]},
                  {"type": "apprise", "conn_id": "refusing_apprise", "on": ["success"]}],
                 connections={"dead_slack": dead, "refusing_teams": refusing, "refusing_apprise": refusing_apprise})
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success" and len(table_rows(url)) == 5
    assert dr.get_task_instance("report").state == "success"
    logged = caplog.text
    assert "could not notify slack through connection 'dead_slack'" in logged
    assert "could not notify teams through connection 'refusing_teams': RuntimeError: the Teams Workflows " \
           "webhook answered 404" in logged
    assert "could not notify apprise through connection 'refusing_apprise': RuntimeError: Apprise did not deliver " \
           "the notice to every one of the connection's 1 service(s)" in logged
    assert "notified apprise" not in logged
