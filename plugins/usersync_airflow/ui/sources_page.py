"""The sources page's HTML: one row per source — type, connection and its last Test, schedule with the time to the
next run, last run with its counts and report, what waits (approvals, cases, quarantine, a draft) — and the actions
the viewer may take. Pure text in, text out (no Airflow)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote

from usersync.core.run_folder import folder_name
from usersync_airflow.ui.reports_page import STATUS_CLASS, STYLE, run_link
from usersync_airflow.ui.source_rows import SourceRow

_STYLE = """
th,td{vertical-align:top;text-align:left}.actions form{display:inline}.actions input{width:8rem}small{color:#666;display:block}
.countdown{font-variant-numeric:tabular-nums}
"""
COUNTS = ("inserted", "updated", "deleted", "disabled", "skipped")


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="minutes") if at else ""


def _test(row: SourceRow) -> str:
    test = row.last_test
    if not test:
        return "<small>not tested from the console yet</small>"
    mark = "ok" if test["ok"] else "bad"
    return f'<small class="{mark}">Test {"passed" if test["ok"] else "FAILED"} {escape(_when(test["at"]))} ' \
           f'by {escape(test["by"])}: {escape(test["summary"])}</small>'


def _schedule(row: SourceRow) -> str:
    if row.paused is None:
        return f"{escape(row.schedule)}<small>waiting for Airflow to read the new file</small>"
    if row.paused:
        return f"{escape(row.schedule)}<small class=\"warn\">DAG paused</small>"
    if row.next_run is None:
        return escape(row.schedule)
    iso = row.next_run.isoformat()
    return f'{escape(row.schedule)}<small>next run <span class="countdown" data-at="{escape(iso)}">' \
           f"{escape(_when(row.next_run))}</span></small>"


def _last_run(row: SourceRow) -> str:
    run = row.last_run
    if not run:
        return "<small>no run yet</small>"
    status = run.get("status") or str(run.get("state", "")).upper()
    counts = ", ".join(f"{k} {run['counts'][k]}" for k in COUNTS if (run.get("counts") or {}).get(k))
    link = run_link(row.dag_id, run.get("folder") or folder_name(run["run_id"]), "report.txt")
    mode = f" ({escape(run['mode'])})" if run.get("mode") and run["mode"] != "live" else ""
    return (f'<span class="{STATUS_CLASS.get(status, "")}">{escape(status)}</span>{mode} '
            f'<a href="{link}">report</a><small>{escape(_when(run.get("started")))}'
            f"{' · ' + escape(counts) if counts else ''}</small>")


def _waiting(row: SourceRow) -> str:
    out = []
    if row.approvals:
        out.append(f'<a href="../dags/{quote(row.dag_id, safe="")}/required_actions" target="_top">'
                   f"{row.approvals} approval(s) waiting</a>")
    if row.cases:
        out.append(f'<a href="cases?source={quote(row.name, safe="")}">{row.cases} open case(s)</a>')
    health = row.health or {}
    if health.get("state") == "quarantined":
        out.append(f'<span class="bad">QUARANTINED</span> <small>{escape(health.get("reason") or "")}</small>')
    elif health.get("state") == "failing":
        out.append(f'<span class="warn">failing ({health.get("failures")} run(s))</span>')
    if row.draft:
        out.append(f'<a href="rules/{quote(row.name, safe="")}">draft pending</a>')
    out += [f'<small class="warn">{escape(n)}</small>' for n in row.notes]
    return "<br>".join(out)


def _actions(row: SourceRow, token: str | None) -> str:
    edit = f'<a href="rules/{quote(row.name, safe="")}">{"edit rules" if row.may_edit else "view rules"}</a>'
    if not (row.may_trigger and token):
        return edit
    preview = '<button name="kind" value="preview">Preview draft</button>' if row.draft else ""
    return (f'{edit}<form class="run" method="post" action="sources/run">'
            f'<input type="hidden" name="source" value="{escape(row.name)}">'
            f'<input type="hidden" name="token" value="{escape(token)}">'
            f'<button name="kind" value="run">Run now</button><button name="kind" value="dry">Dry run</button>'
            '<button formaction="sources/test" title="bind and the rules\' real search">Test</button>'
            f"{preview}<br><input name=\"account\" placeholder=\"one account…\" aria-label=\"account\">"
            f'<button name="kind" value="account">One account…</button></form>')


def sources_page(rows: list[SourceRow], tokens: dict[str, str], may_create: bool, broken: dict[str, str],
                 said: str = "", writable: bool = True) -> str:
    """``tokens``: the run form's token per source the viewer may trigger; ``broken``: rules files that do not
    validate (file → first problem)."""
    body = "".join(
        f'<tr class="source" data-source="{escape(r.name)}"><td class="l"><b>{escape(r.name)}</b>'
        f"<small>{escape(r.file)} · DAG {escape(r.dag_id)}</small></td><td class=\"l\">{escape(r.type)}</td>"
        f'<td class="l">{escape(r.conn_id or "(none: a file chosen per run)")}{_test(r)}</td>'
        f'<td class="l">{_schedule(r)}</td><td class="l">{_last_run(r)}</td><td class="l">{_waiting(r)}</td>'
        f'<td class="l actions">{_actions(r, tokens.get(r.name))}</td></tr>' for r in rows)
    new = '<p><a class="new-source" href="new">+ New source</a></p>' if may_create else ""
    bad = "".join(f"<li><b>{escape(f)}</b>: {escape(why)}</li>" for f, why in broken.items())
    bad = f'<h3 class="bad">Rules files that do not validate</h3><ul>{bad}</ul>' if bad else ""
    folder = "" if writable else "<p class=\"warn\">The rules folder is read only here: edits are downloaded.</p>"
    said_html = f'<p class="said">{escape(said)}</p>' if said else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>usersync sources</title>'
            f"<style>{STYLE}{_STYLE}.said{{background:#e8f5e9;padding:.4rem}}</style></head><body>"
            f'<h1>Sources</h1><p><a href="reports">reports</a> · <a href="cases">cases</a> · '
            f'<a href="history">user history</a></p>{said_html}{new}{folder}'
            f'<table class="sources"><thead><tr><th>source</th><th>type</th><th>connection</th><th>schedule</th>'
            f"<th>last run</th><th>waiting</th><th></th></tr></thead><tbody>{body}</tbody></table>{bad}"
            f"{_COUNTDOWN}</body></html>")


_COUNTDOWN = """<script>
(() => {
  function tick() {
    for (const el of document.querySelectorAll('.countdown')) {
      const left = Math.max(0, (Date.parse(el.dataset.at) - Date.now()) / 1000);
      const h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = Math.floor(left % 60);
      el.textContent = 'in ' + h + ' h ' + String(m).padStart(2, '0') + ' min ' + String(s).padStart(2, '0') + ' s';
    }
  }
  tick(); setInterval(tick, 1000);
})();
</script>"""
