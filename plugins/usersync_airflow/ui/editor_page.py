"""The rules editor's HTML: the form generated from the rules model, its actions (*Save as draft*, *Preview*,
*Go live*, *Reload*; *Download* where the rules folder cannot be written), the YAML diff against the live file and
the source's recent changes. Pure text in, text out (no Airflow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from usersync.rules.form import RulesForm
from usersync_airflow.ui import form_html
from usersync_airflow.ui.reports_page import STYLE


@dataclass
class EditorView:
    source: str
    file: str
    form: RulesForm
    editing: str  # "draft" or "live"
    diff: str
    token: str
    writable: bool
    may_edit: bool
    may_trigger: bool
    stats: dict[str, str] = field(default_factory=dict)
    stats_from: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    said: str = ""
    text: str = ""


def _history(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No change made from the console yet.</p>"
    items = "".join(f"<tr><td class=\"l\">{escape(r['at'].isoformat(timespec='minutes'))}</td>"
                    f"<td class=\"l\">{escape(r['by'])}</td><td class=\"l\">{escape(r['action'])}</td>"
                    f"<td class=\"l\">{escape(r['summary'])}</td></tr>" for r in rows)
    return f'<table class="history"><thead><tr><th>when</th><th>who</th><th>what</th><th></th></tr></thead>' \
           f"<tbody>{items}</tbody></table>"


def editor_page(view: EditorView) -> str:
    source = quote(view.source, safe="")
    said = f'<p class="said">{escape(view.said)}</p>' if view.said else ""
    where = "the draft" if view.editing == "draft" else "the live rules"
    readonly = "" if view.writable else (
        '<p class="warn-box" id="read-only">The rules folder cannot be written here (a read-only bundle or mount): '
        "the console validates and previews your change, and offers the file to download or copy; commit it where "
        "the rules folder comes from.</p>")
    buttons = []
    if view.may_edit and view.writable:
        buttons += [f'<button class="needs-valid" formaction="{source}/save">Save as draft</button>',
                    f'<button class="needs-valid" formaction="{source}/live">Go live</button>']
    if view.may_edit and not view.writable:
        buttons.append(f'<button class="needs-valid" formaction="{source}/download">Download the file</button>')
    if view.may_trigger:
        buttons.append(f'<button class="needs-valid" formaction="{source}/preview">Preview</button>')
    if view.may_edit:
        buttons.append('<button type="button" class="reload">Reload</button>')
    copy = "" if view.writable else (f'<h3>The file</h3><textarea id="yaml" rows="16" cols="110" readonly>'
                                     f"{escape(view.text)}</textarea>")
    stats_from = f"<p>Statistics beside the attributes: {escape(view.stats_from)}.</p>" if view.stats_from else \
        "<p>No read of this source kept yet: statistics appear after its first run.</p>"
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>usersync rules: {escape(view.source)}</title>"
            f"<style>{STYLE}{form_html.STYLE}</style></head><body>"
            f'<p><a href="../sources">← sources</a></p><h1>Rules of {escape(view.source)} '
            f"<small>({escape(view.file)}, editing {where})</small></h1>{said}{readonly}{stats_from}"
            f'<form class="rules" method="post" action="{source}/save" autocomplete="off">'
            f'<input type="hidden" name="token" value="{escape(view.token)}">'
            f'<p class="actions">{"".join(buttons)} <span id="status"></span></p>'
            f"{form_html.rules_inputs(view.form, view.stats)}"
            f'<p class="actions">{"".join(buttons)}</p></form>'
            f'<h3>Change against the live file</h3><pre class="diff" id="diff">{escape(view.diff)}</pre>{copy}'
            f"<h3>Recent changes</h3>{_history(view.history)}"
            f"{form_html.script(f'{source}/check')}</body></html>")
