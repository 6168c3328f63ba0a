"""The history page's HTML and CSV: one user's timeline across sources, from the per-user log. Each event names
its run (linked to the run's report), what changed (old → new), why, and who let the run through a guard. Pure
text in, text out (no Airflow); everything shown is escaped."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

from usersync.run.export import inert
from usersync.store.history import Event
from usersync.store.user_log import WRITES
from usersync_airflow.ui.reports_page import STYLE

CSV_COLUMNS = ("at", "last_at", "seen", "source", "run_id", "action", "code", "user_id", "username", "ad_username",
               "domain", "external_id", "approved_by", "changes", "reason", "note", "rules_hash")
HISTORY_STYLE = "td.l,th.l{text-align:left}td{vertical-align:top}.ch{font-family:monospace;font-size:.85rem}" \
                "form.search input[type=text]{width:24rem}"


def _value(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _what(event: Event) -> str:
    """The event's detail as lines: each changed column old → new, a deleted user's values, why."""
    lines = [f"{escape(c)}: {escape(_value(old))} → {escape(_value(new))}"
             for c, (old, new) in event.detail.get("changes", {}).items()]
    if event.action == "deleted" and "row" in event.detail:
        kept = ", ".join(f"{c} {_value(v)}" for c, v in event.detail["row"].items() if v not in (None, "", False))
        lines.append(f"values when deleted: {escape(kept)}")
    for key in ("account", "reason", "note"):
        if event.detail.get(key):
            lines.append(f"{key}: {escape(str(event.detail[key]))}")
    return "<br>".join(lines)


def history_page(query: str, events: list[Event], report_link: Callable[[Event], str | None],
                 undo: Callable[[Event], str | None] | None = None) -> str:
    """The search form and, for ``query``, its timeline (oldest first); ``report_link``: an event's run report;
    ``undo``: the undo form of an event's run, for a viewer who may trigger its DAG (once per run, on a write)."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>usersync history</title>"
           f"<style>{STYLE}{HISTORY_STYLE}</style></head><body><h1>usersync — what happened to a user</h1>"
           '<p><a href="reports">← runs</a></p>'
           '<form class="search" method="get" action="history"><label>username, AD username, DOMAIN\\user, anchor, '
           f'e-mail or number <input type="text" name="q" value="{escape(query)}" autofocus></label> '
           '<button type="submit">search</button></form>']
    if query.strip() and not events:
        out.append(f"<p class='none'>Nothing in the per-user log for {escape(query)!s} (in the sources you may "
                   "read, within the log's retention).</p>")
    if events:
        out.append(f'<p><a href="api/history?q={escape(_q(query))}">JSON</a> · '
                   f'<a href="history.csv?q={escape(_q(query))}">CSV</a></p>')
        header = "".join(f"<th class='l'>{h}</th>" for h in ("when", "source", "run", "what", "user", "changes and why",
                                                              "approved by"))
        out.append(f"<table class='timeline'><thead><tr>{header}</tr></thead><tbody>")
        offered: set[str] = set()
        for e in events:
            when = e.at.strftime("%Y-%m-%d %H:%M UTC")
            if e.seen > 1 and e.last_at:
                when += f" … {e.last_at:%Y-%m-%d %H:%M} ({e.seen} runs)"
            link = report_link(e)
            run = f'<a href="{escape(link)}">{escape(e.run_id)}</a>' if link else escape(e.run_id)
            if undo is not None and e.action in WRITES and e.run_id not in offered and (form := undo(e)):
                run += form
                offered.add(e.run_id)
            what = escape(e.action) + (f" ({escape(e.code)})" if e.code else "")
            user = escape(" · ".join(x for x in (e.username, e.key, e.external_id) if x))
            out.append(f'<tr class="event {escape(e.action)}" data-event-id="{e.id}"><td class="l">{escape(when)}</td>'
                       f'<td class="l">{escape(e.source or "")}</td><td class="l">{run}</td><td class="l">{what}</td>'
                       f'<td class="l">{user}</td><td class="l ch">{_what(e)}</td>'
                       f'<td class="l">{escape(e.approved_by or "")}</td></tr>')
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "".join(out)


def _q(query: str) -> str:
    from urllib.parse import quote

    return quote(query, safe="")


def history_csv(events: list[Event]) -> Iterator[str]:
    """The timeline as CSV, one row per event (changes as JSON); cells a spreadsheet would run as a formula are
    made inert."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for e in events:
        data = e.to_json()
        row = {**data, "changes": json.dumps(e.detail.get("changes"), default=str) if e.detail.get("changes") else "",
               "reason": e.detail.get("reason", ""), "note": e.detail.get("note", "")}
        writer.writerow(inert(tuple(row.get(c) for c in CSV_COLUMNS)))
        yield flush()
