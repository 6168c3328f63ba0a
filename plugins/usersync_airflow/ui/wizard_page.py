"""The new-source wizard's HTML, one page whose steps open in turn: type and name → the Airflow connection (its
secret goes to Airflow only) → the rules, from the type's example, with *Test* (bind and the real search) → create
→ *Dry run* and its report → enable the schedule. Pure text in, text out (no Airflow)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from usersync.rules.form import RulesForm
from usersync_airflow.ui import form_html
from usersync_airflow.ui.reports_page import STYLE

#: the Airflow connection type each source type reads through (database sources: the database's own); a new source
#: type adds its line here for the wizard's default (an admin may type another)
CONNECTION_TYPES = {"active_directory": "usersync_ldap", "ldap": "usersync_ldap", "entra_id": "usersync_entra",
                    "scim": "usersync_scim", "cucm": "usersync_axl", "database": "postgres", "csv": ""}
NAME_RULE = "three or more letters, digits, '_' or '-', no blanks"
# valid both for Python and for the browser, which compiles ``pattern`` with the ``v`` flag: there an unescaped '-'
# in a class is an error, and a broken pattern is silently ignored
NAME_PATTERN = r"[A-Za-z0-9_\-]{3,64}"
#: the sections of the rules the wizard shows (the field rules too); the editor shows them all afterwards
SHOWN = ("source", "target", "safety", "alarms")


@dataclass
class WizardView:
    types: list[str]
    token: str
    type: str = ""
    name: str = ""
    conn_id: str = ""
    problem: str = ""
    said: str = ""
    connection_exists: bool = False
    form: RulesForm | None = None
    created: bool = False
    parsed: bool = False
    run_id: str = ""
    run_state: str = ""
    report: str = ""
    run_token: str = ""  # the source's own form token (the sources page's run form)


def _hidden(values: dict[str, Any]) -> str:
    return "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">' for k, v in values.items())


def wizard_page(v: WizardView) -> str:
    state = {"type": v.type, "name": v.name, "conn": v.conn_id}
    steps = [_step_source(v)]
    if v.type and v.name and not v.problem.startswith("name"):
        steps.append(_step_connection(v))
    if v.form is not None and not v.created:
        steps.append(_step_rules(v, state))
    if v.created:
        steps.append(_step_run(v, state))
    said = f'<p class="said" id="said">{escape(v.said)}</p>' if v.said else ""
    problem = f'<p class="bad" id="problem">{escape(v.problem)}</p>' if v.problem else ""
    poll = _POLL if v.created and (not v.parsed or v.run_state in ("queued", "running")) else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>usersync: new source</title>'
            f"<style>{STYLE}{form_html.STYLE}.step{{border-left:3px solid #1565c0;padding-left:.8rem;margin:1rem 0}}"
            f"pre.test{{background:#f6f6f6;padding:.5rem}}</style></head><body>"
            f'<p><a href="sources">← sources</a></p><h1>New source</h1>{said}{problem}{"".join(steps)}'
            + (form_html.script("new/check") if v.form is not None and not v.created else "") + poll
            + "</body></html>")


def _step_source(v: WizardView) -> str:
    options = "".join(f'<option{" selected" if t == v.type else ""}>{escape(t)}</option>' for t in v.types)
    return (f'<section class="step" id="step-source"><h2>1. Type and name</h2><form method="get" action="new">'
            f'<label>type <select name="type">{options}</select></label> '
            f'<label>unique name <input name="name" value="{escape(v.name)}" pattern="{NAME_PATTERN}" '
            f'title="{NAME_RULE}" required></label> <button>Continue</button>'
            f"<small class=\"help\">The name becomes the DAG id user_sync__&lt;name&gt;: {NAME_RULE}.</small>"
            f"</form></section>")


def _step_connection(v: WizardView) -> str:
    conn = v.conn_id or f"usersync_{v.name}"
    if v.type == "csv":
        body = "<p>A CSV import reads the file chosen when it is triggered: it needs no connection.</p>"
    elif v.connection_exists:
        body = (f"<p>Airflow connection <b>{escape(conn)}</b> is defined; the rules below use it. "
                "Its secret stays in Airflow.</p>")
    else:
        kind = CONNECTION_TYPES.get(v.type, "")
        body = (f'<form method="post" action="new/connection">{_hidden({"token": v.token, "type": v.type, "name": v.name})}'
                f'<label>connection id <input name="conn_id" value="{escape(conn)}" required></label><br>'
                f'<label>connection type <input name="conn_type" value="{escape(kind)}"></label><br>'
                '<label>host <input name="host" size="40"></label> <label>port <input name="port" size="6"></label><br>'
                '<label>login <input name="login" size="50"></label><br>'
                '<label>password <input name="password" type="password" autocomplete="new-password"></label><br>'
                '<label>extra (JSON) <textarea name="extra" rows="3" cols="80">{}</textarea></label><br>'
                "<button>Create the connection in Airflow</button>"
                "<small class=\"help\">Stored by Airflow (encrypted with its Fernet key), never in the rules file, a "
                "report or a log. The fields are those of the connection type: docs/first-source.md.</small></form>")
    return f'<section class="step" id="step-connection"><h2>2. Connection</h2>{body}</section>'


def _step_rules(v: WizardView, state: dict[str, str]) -> str:
    assert v.form is not None
    return (f'<section class="step" id="step-rules"><h2>3. Rules</h2><p>From the {escape(v.type)} example: check '
            "the object path, the filter and the attributes, then <b>Test</b> runs the real search.</p>"
            f'<form class="rules" method="post" action="new/create" autocomplete="off">'
            f'{_hidden({"token": v.token, "_type": state["type"], "_name": state["name"], "_conn": state["conn"]})}'
            f'<p class="actions"><button type="button" id="test">Test</button>'
            f'<button class="needs-valid">Create the source</button> <span id="status"></span></p>'
            f'<pre class="test" id="test-result">not tested yet</pre>'
            f"{form_html.rules_inputs(v.form, {}, only=SHOWN)}</form>"
            "<script>document.getElementById('test').addEventListener('click', async () => {"
            "const out = document.getElementById('test-result'); out.textContent = 'testing…';"
            "const form = document.querySelector('form.rules');"
            "const r = await fetch('new/test', {method: 'POST', body: new URLSearchParams(new FormData(form)),"
            " credentials: 'same-origin'}); const d = await r.json();"
            "out.className = 'test ' + (d.ok ? 'ok' : 'bad'); out.textContent = (d.ok ? 'Test passed\\n' : 'Test FAILED\\n')"
            " + d.lines.join('\\n');});</script></section>")


def _step_run(v: WizardView, state: dict[str, str]) -> str:
    name = quote(v.name, safe="")
    if not v.parsed:
        return ('<section class="step" id="step-run"><h2>4. Dry run</h2><p id="waiting">Waiting for Airflow to read '
                "the new rules file (the DAG appears without a restart)…</p></section>")
    run = ""
    if v.run_id:
        report = f' <a id="report" href="{escape(v.report)}">the report</a>' if v.report else ""
        run = f'<p id="run">Dry run <code>{escape(v.run_id)}</code>: <b id="run-state">{escape(v.run_state)}</b>{report}</p>'
    dry = (f'<form method="post" action="sources/run">{_hidden({"token": v.run_token, "source": v.name, "kind": "dry", "back": "wizard"})}'
           "<button>Dry run</button> <small class=\"help\">reads the source and reports what a run would do; writes "
           "nothing</small></form>")
    schedule = (f'<form method="post" action="new/schedule">{_hidden({"token": v.token, "name": v.name})}'
                '<label>daily at <input name="hour" type="number" min="0" max="23" value="2" size="3"></label>:'
                '<input name="minute" type="number" min="0" max="59" value="0" size="3"> '
                '<label>time zone <input name="timezone" value="UTC"></label> <button>Enable the schedule</button>'
                "</form>")
    return (f'<section class="step" id="step-run"><h2>4. Dry run, then the schedule</h2>{dry}{run}'
            f'<h2>5. Auto mode</h2>{schedule}<p><a href="rules/{name}">edit the rules</a></p></section>')


_POLL = """<script>setTimeout(() => location.reload(), 2000);</script>"""
