"""The cases page's HTML: live cases per source with the two sides next to each other, filters, one form per
case and bulk forms per source. Pure data in, text out (no Airflow); everything shown is escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from usersync_airflow.ui.reports_page import STYLE

CASES_STYLE = ("td.l,th.l{text-align:left}td{vertical-align:top}.side{font-size:.85rem}.side b{font-weight:600}"
               "form.inline{display:inline}form.filters label{margin-right:.8rem}.done{background:#eef7ee;padding:.4rem}"
               "tr.case.closed{color:#777}")
STATUSES = ("live", "open", "decided", "kept", "rejected", "closed", "all")
#: the buttons each kind of case offers, as (decision, label)
ACTIONS = {"number": (("give", "give the number to the claimant"), ("keep", "keep the holder")),
           "match": (("confirm", "confirm (link)"), ("reject", "reject (a new user)"))}
PAGE = 200


@dataclass(frozen=True)
class Filters:
    source: str = ""
    status: str = "live"
    kind: str = ""
    q: str = ""
    page: int = 0

    def query(self, **changes: Any) -> str:
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", 0, None)})


def _v(value: Any) -> str:
    return "—" if value in (None, "") else escape(str(value))


def _values(values: dict[str, Any]) -> str:
    return "<br>".join(f"<b>{escape(k)}</b> {_v(v)}" for k, v in values.items() if k not in ("by", "also", "id"))


def _claimant(case: dict[str, Any]) -> str:
    who = f"{case.get('domain')}\\{case.get('ad_username')}" if case.get("ad_username") else case.get("account")
    lines = [f"<b>account</b> {_v(who)}", f"<b>in the source</b> {_v(case.get('account'))}"]
    if case["kind"] == "number":
        lines.append(f"<b>username</b> {_v(case.get('username'))}")
        lines.append(f"<b>wants</b> {_v(case.get('field'))} {_v(case.get('value'))}")
    else:
        lines.append(_values((case.get("detail") or {}).get("account", {})))
    return "<br>".join(lines)


def _other_side(case: dict[str, Any]) -> str:
    detail = case.get("detail") or {}
    if case["kind"] == "number":
        return (f"<b>held by</b> {_v(case.get('holder'))} (id {_v(case.get('holder_id'))})<br>"
                f"{_v(detail.get('holder_is'))}")
    out = []
    for c in detail.get("candidates", []):
        also = f"<br><b>also proposed for</b> {escape(', '.join(c['also']))}" if c.get("also") else ""
        out.append(f"<div class='candidate' data-user-id='{int(c['id'])}'><b>user</b> #{int(c['id'])}<br>"
                   f"{_values(c)}<br><b>found by</b> {escape(', '.join(c.get('by', [])))}{also}</div>")
    return "<hr>".join(out) or "—"


def _state(case: dict[str, Any]) -> str:
    out = escape(case["status"])
    if case.get("decision"):
        out += f"<br>{escape(case['decision'])} by {_v(case.get('decided_by'))}<br>{_v((case.get('decided_at') or '')[:16])}"
    if case.get("outcome"):
        out += f"<br><i>{escape(case['outcome'])}</i>"
    return out


def _actions(case: dict[str, Any], token: str) -> str:
    if case.get("closed_at"):
        return ""
    choose = case["kind"] == "match" and len((case.get("detail") or {}).get("candidates", [])) > 1
    out = [f"<form class='decide' method='post' action='cases/decide'>"
           f"<input type='hidden' name='token' value='{escape(token)}'>"
           f"<input type='hidden' name='source' value='{escape(case['source'])}'>"
           f"<input type='hidden' name='ids' value='{int(case['id'])}'>"]
    if choose:
        out += [f"<label><input type='radio' name='user_id' value='{int(c['id'])}'> #{int(c['id'])} {_v(c.get('username'))}"
                "</label><br>" for c in case["detail"]["candidates"]]
    for decision, label in ACTIONS[case["kind"]]:
        if decision == "give" and case.get("holder_id") is None:
            continue
        out.append(f"<button type='submit' name='decision' value='{decision}'>{escape(label)}</button> ")
    out.append("</form>")
    return "".join(out)


def cases_page(cases: list[dict[str, Any]], total: int, filters: Filters, sources: list[str],
               tokens: dict[str, str], message: str = "") -> str:
    """The page: filters, and per source its cases (checkboxes and bulk forms where ``tokens`` has the source —
    the viewer may trigger its DAG), then paging. ``message``: what the last decision did."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>usersync cases</title>"
           f"<style>{STYLE}{CASES_STYLE}</style></head><body><h1>usersync — cases to decide</h1>"
           '<p><a href="reports">← runs</a> · <a href="history">history</a></p>']
    if message:
        out.append(f"<p class='done'>{escape(message)}</p>")
    options = "".join(f"<option value='{escape(s)}'{' selected' if s == filters.source else ''}>{escape(s)}</option>"
                      for s in ["", *sources])
    states = "".join(f"<option{' selected' if s == filters.status else ''}>{s}</option>" for s in STATUSES)
    kinds = "".join(f"<option value='{k}'{' selected' if k == filters.kind else ''}>{k or 'any'}</option>"
                    for k in ("", "number", "match"))
    out.append("<form class='filters' method='get' action='cases'>"
               f"<label>source <select name='source'>{options}</select></label>"
               f"<label>status <select name='status'>{states}</select></label>"
               f"<label>kind <select name='kind'>{kinds}</select></label>"
               f"<label>search <input type='text' name='q' value='{escape(filters.q)}'></label>"
               "<button type='submit'>show</button></form>")
    out.append(f"<p>{total} case(s) · <a href='api/cases?{escape(filters.query())}'>JSON</a></p>")
    if not cases:
        out.append("<p class='none'>No cases here.</p>")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        by_source.setdefault(case["source"], []).append(case)
    for source, listed in by_source.items():
        token = tokens.get(source)
        out.append(f"<h2 id='source-{escape(source)}'>{escape(source)}</h2>")
        if token:
            out.append(f"<form class='bulk' id='bulk-{escape(source)}' method='post' action='cases/decide'>"
                       f"<input type='hidden' name='token' value='{escape(token)}'>"
                       f"<input type='hidden' name='source' value='{escape(source)}'>"
                       "selected cases: "
                       + "".join(f"<button type='submit' name='decision' value='{d}'>{escape(label)}</button> "
                                 for d, label in (*ACTIONS["match"], *ACTIONS["number"]))
                       + "<label><input type='checkbox' class='all' onclick=\"for (const b of document.querySelectorAll("
                       f"'input[form=bulk-{escape(source)}]')) b.checked = this.checked\"> all on this page</label>"
                       "</form> "
                       f"<form class='inline run' method='post' action='cases/run'>"
                       f"<input type='hidden' name='token' value='{escape(token)}'>"
                       f"<input type='hidden' name='source' value='{escape(source)}'>"
                       "<button type='submit'>run now (applies the decisions)</button></form>")
        header = "".join(f"<th class='l'>{h}</th>" for h in ("", "case", "status", "the account", "the other side",
                                                              "seen", "decide"))
        out.append(f"<table class='cases'><thead><tr>{header}</tr></thead><tbody>")
        for case in listed:
            pick = (f"<input type='checkbox' name='ids' value='{int(case['id'])}' form='bulk-{escape(source)}'>"
                    if token and not case.get("closed_at") else "")
            seen = (f"since {_v((case.get('opened_at') or '')[:16])}<br>last {_v((case.get('last_at') or '')[:16])}"
                    f"<br>{int(case.get('seen') or 0)} run(s)")
            out.append(f"<tr class='case {escape(case['kind'])} {escape(case['status'])}' data-case-id='{int(case['id'])}'>"
                       f"<td>{pick}</td><td class='l'>#{int(case['id'])} {escape(case['kind'])}</td>"
                       f"<td class='l'>{_state(case)}</td><td class='l side'>{_claimant(case)}</td>"
                       f"<td class='l side'>{_other_side(case)}</td><td class='l'>{seen}</td>"
                       f"<td class='l'>{_actions(case, token) if token else ''}</td></tr>")
        out.append("</tbody></table>")
    if total > (filters.page + 1) * PAGE:
        out.append(f"<p><a href='cases?{escape(filters.query(page=filters.page + 1))}'>next {PAGE} →</a></p>")
    out.append("</body></html>")
    return "".join(out)
