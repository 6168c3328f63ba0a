"""The reports page's HTML: per source, its runs of the last days (mode, status, counts, links to the report and
the change set) and a chart of those counts per run, drawn as inline SVG — no script, nothing fetched from
elsewhere, so it works behind any proxy and in an air-gapped network. Pure text in, text out (no Airflow)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

CHART_COUNTS = ("inserted", "updated", "deleted", "disabled", "skipped")
#: the table's columns: the chart's, then the leavers' (pending deletion, returned, protected holds, detached)
TABLE_COUNTS = (*CHART_COUNTS, "pending", "returned", "protected", "detached")
COLOURS = {"inserted": "#2e7d32", "updated": "#1565c0", "deleted": "#c62828", "disabled": "#ef6c00",
           "skipped": "#757575"}
STATUS_CLASS = {"SUCCESS": "ok", "COMPLETED WITH WARNINGS": "warn", "FAILED": "bad", "BLOCKED": "bad",
                "WAITING FOR APPROVAL": "warn", "SKIPPED (QUARANTINED)": "warn"}

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:right}
td:first-child,th:first-child,td.l,th.l{text-align:left}.ok{color:#2e7d32}.warn{color:#ef6c00}.bad{color:#c62828;font-weight:bold}
.health{padding:.4rem .6rem;border:1px solid #ddd;margin:.4rem 0}.health form{display:inline;margin-left:1rem}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}
"""


def run_link(dag_id: str, folder: str, name: str) -> str:
    """A run's file as the reports app serves it, relative to the app (``/usersync/``)."""
    return f"runs/{quote(dag_id, safe='')}/{quote(folder, safe='')}/{name}"


def chart(runs: list[dict[str, Any]], width: int = 720, height: int = 180) -> str:
    """Stacked bars, one per run (oldest left): inserted / updated / deleted / disabled / skipped."""
    top = max([sum(r["counts"].get(k, 0) for k in CHART_COUNTS) for r in runs] + [1])
    step = width / max(len(runs), 1)
    bar = max(min(step * 0.7, 40), 2)
    label_every = max(1, round(len(runs) / 12))  # at most ~12 time labels under the bars
    parts = [f'<svg class="chart" role="img" aria-label="changes per run" width="{width + 60}" height="{height + 40}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="12" font-size="11">{top}</text><text x="0" y="{height + 10}" font-size="11">0</text>',
             f'<line x1="40" y1="{height + 10}" x2="{width + 50}" y2="{height + 10}" stroke="#999"/>']
    for i, run in enumerate(runs):
        x, y = 45 + i * step, height + 10
        tip = ", ".join(f"{k} {run['counts'].get(k, 0)}" for k in CHART_COUNTS)
        dry = run.get("mode") == "dry run"  # planned, not written: drawn faded
        fade = ' opacity="0.4"' if dry else ""
        parts.append(f'<g class="run{" dry" if dry else ""}"{fade}>'
                     f'<title>{escape(run.get("started") or "")} ({escape(run.get("mode", ""))}, '
                     f'{escape(run.get("status", ""))}): {tip}</title>')
        if i % label_every == 0:
            when = (run.get("started") or "")[5:16].replace("T", " ")  # MM-DD HH:MM
            parts.append(f'<text x="{x:.1f}" y="{height + 24}" font-size="10">{escape(when)}</text>')
        for kind in CHART_COUNTS:
            n = run["counts"].get(kind, 0)
            if n:
                h = max(n / top * height, 1)
                y -= h
                parts.append(f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                             f'fill="{COLOURS[kind]}"/>')
        parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{COLOURS[k]}"></i>{k}</span>' for k in CHART_COUNTS)
    legend += "<span>(faded: dry runs, nothing written)</span>"
    return "".join(parts) + f'<div class="legend">{legend}</div>'


#: counts of a run that wrote the users table: what an undo can reverse
WRITTEN = ("inserted", "updated", "deleted", "disabled", "detached", "returned", "restored")
UndoToken = Callable[[str, str], "str | None"]


def undo_form(dag_id: str, run_id: str, token: str) -> str:
    """The undo button of a live run that wrote something: a form posting to the app (``undo``, beside this page)
    with its token; it triggers a new run, which goes through the guard and approval like any other, optionally
    as a dry run."""
    return ('<form class="undo" method="post" action="undo">'
            f'<input type="hidden" name="dag_id" value="{escape(dag_id)}">'
            f'<input type="hidden" name="run_id" value="{escape(run_id)}">'
            f'<input type="hidden" name="token" value="{escape(token)}">'
            '<label><input type="checkbox" name="dry_run" value="true" checked> dry run</label> '
            '<button type="submit">undo this run</button></form>')


def _row(dag_id: str, run: dict[str, Any], undo_token: UndoToken | None = None) -> str:
    counts = run.get("counts", {})
    status = run.get("status", "")
    approval = run.get("approval") or {}
    who = f" — {'approved' if approval.get('approved') else 'rejected'} by {approval['by']}" if approval.get("by") else ""
    links = [f'<a href="{run_link(dag_id, run["folder"], "report.txt")}">report</a>',
             f'<a href="{run_link(dag_id, run["folder"], "report.txt")}?download=1" download>download</a>']
    if run.get("account"):
        links.insert(0, f'<a class="explanation" href="{run_link(dag_id, run["folder"], "explanation.txt")}">'
                        f'explanation</a>')
    if run.get("plan"):
        links.append(f'<a href="{run_link(dag_id, run["folder"], "changes.csv")}">change set (CSV)</a>')
    if run.get("account"):
        links.append(f'<a class="history" href="history?q={quote(str(run["account"]), safe="")}">history</a>')
    token = undo_token(dag_id, run.get("run_id", "")) if undo_token and run.get("run_id") else None
    if token and run.get("mode") == "live" and run.get("status") in ("SUCCESS", "COMPLETED WITH WARNINGS") \
            and any(counts.get(k) for k in WRITTEN):
        links.append(undo_form(dag_id, run["run_id"], token))
    mode = run.get("mode", "") + (f" · account {run['account']}" if run.get("account") else "")
    cells = [f'<td>{escape(run.get("started") or "")}</td>', f'<td class="l">{escape(mode)}</td>',
             f'<td class="l {STATUS_CLASS.get(status, "")}">{escape(status)}{escape(who)}</td>',
             *(f'<td class="{k}">{counts.get(k, 0)}</td>' for k in TABLE_COUNTS), f'<td class="l">{" · ".join(links)}</td>']
    return f'<tr class="run" data-run-id="{escape(run.get("run_id", ""))}">{"".join(cells)}</tr>'


def _when(value: Any) -> str:
    return value.isoformat(timespec="minutes") if hasattr(value, "isoformat") else "?"


def release_form(source: str, token: str) -> str:
    """The release button of a quarantined source: its next scheduled run tries the source again."""
    return ('<form class="release" method="post" action="release">'
            f'<input type="hidden" name="source" value="{escape(source)}">'
            f'<input type="hidden" name="token" value="{escape(token)}">'
            '<button type="submit">release from quarantine</button></form>')


def health_banner(health: dict[str, Any] | None, release_token: str | None = None) -> str:
    """A source's state between runs (``source_health``): quarantined since when, why, what clears it and the
    next try (with the release button for who may trigger it); failing; or healthy with its last success."""
    from usersync.plan.health import CLEARS, FAILING, QUARANTINED

    if not health:
        return ""
    state, reason = health.get("state"), escape(str(health.get("reason") or ""))
    if state == QUARANTINED:
        clears = escape(CLEARS.get(health.get("failure_kind") or "other", CLEARS["other"]))
        form = release_form(health["source"], release_token) if release_token else ""
        return (f'<div class="health quarantined bad"><strong>QUARANTINED</strong> since '
                f'{_when(health.get("quarantined_at"))} after {health.get("failures")} failed run(s) in a row: '
                f'<span class="reason">{reason}</span>. What clears it: {clears}. Next scheduled try: '
                f'<span class="next-try">{_when(health.get("next_try_at"))}</span> (a manual run always tries).'
                f"{form}</div>")
    if state == FAILING:
        return (f'<div class="health failing warn"><strong>FAILING</strong>: {health.get("failures")} failed run(s) '
                f'in a row since {_when(health.get("first_failure_at"))}: <span class="reason">{reason}</span></div>')
    released = (f' · released from quarantine by {escape(str(health["released_by"]))} at '
                f'{_when(health.get("released_at"))}') if health.get("released_by") else ""
    read = f' · last full read {health["last_read"]} accounts' if health.get("last_read") is not None else ""
    return (f'<div class="health ok">healthy · last success {_when(health.get("last_success_at"))}{read}'
            f"{released}</div>")


def page(history: dict[str, list[dict[str, Any]]], days: int, undo_token: UndoToken | None = None,
         triggered: str = "", health: dict[str, dict[str, Any]] | None = None,
         release_tokens: dict[str, str] | None = None, said: str = "") -> str:
    """The whole page: ``history`` is ``usersync.run.summaries.recent_runs`` (per DAG id, oldest first);
    ``undo_token`` gives the undo form's token for a run the viewer may undo (None: no undo button); ``health``
    each DAG's source health row, ``release_tokens`` the release form's token per DAG the viewer may trigger."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>usersync reports</title><style>{STYLE}</style>"
           f"</head><body><h1>usersync — runs of the last {days} days</h1>"
           '<form class="search" method="get" action="history"><label>What happened to a user? '
           '<input type="text" name="q" placeholder="username, DOMAIN\\user, anchor, e-mail or number"></label> '
           '<button type="submit">history</button></form>'
           '<p><a href="cases">cases to decide</a> (held numbers, proposed matches)</p>']
    if said:
        out.append(f'<p class="said">{escape(said)}</p>')
    if triggered:
        out.append(f'<p class="triggered">triggered run {escape(triggered)}: it appears here when it has a report '
                   "(an undo that removes users may wait for an approval in Required Actions)</p>")
    if not history:
        out.append("<p>No runs yet. Trigger a sync DAG (user_sync__…) and its report appears here.</p>")
    header = "".join(f"<th>{h}</th>" for h in ("started", "mode", "status", *TABLE_COUNTS)) + '<th class="l">links</th>'
    health, release_tokens = health or {}, release_tokens or {}
    for dag_id, everything in history.items():
        runs = [r for r in everything if r.get("kind") != "draft preview"]
        previews = [r for r in everything if r.get("kind") == "draft preview"]
        banner = health_banner(health.get(dag_id), release_tokens.get(dag_id))
        out.append(f'<section class="source" id="{escape(dag_id)}"><h2>{escape(dag_id)}</h2>{banner}{chart(runs)}'
                   f"<table class=\"runs\"><thead><tr>{header}</tr></thead><tbody>"
                   + "".join(_row(dag_id, r, undo_token) for r in reversed(runs)) + "</tbody></table>")
        if previews:  # what draft rules would do: apart from the runs that follow the live rules
            out.append(f"<h3>draft previews (dry runs with the draft rules)</h3><table class=\"previews\"><thead>"
                       f"<tr>{header}</tr></thead><tbody>" + "".join(_row(dag_id, r) for r in reversed(previews))
                       + "</tbody></table>")
        out.append("</section>")
    out.append("</body></html>")
    return "".join(out)
