"""A ``RulesForm`` (``usersync.rules.form``) as HTML inputs, and the script that validates it as the admin types.

Each input is named by its setting's path (``safety.max_deletes``), so what the browser posts is what
``form_values`` reads back; each carries its default for the *Default* button; every text shown is escaped. Pure
text in, text out (no Airflow)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

import yaml

from usersync.rules.form import POLICY_PARTS, FieldRow, Input, RulesForm, Section


def as_text(one: Input, value: Any) -> str:
    """A setting's value as its input holds it."""
    if one.widget == "checkbox":
        return "true" if value else "false"
    if one.widget == "lines":
        return "\n".join(str(v) for v in value or [])
    if one.widget == "yaml":
        return "" if value in (None, [], {}) else yaml.safe_dump(value, sort_keys=False, allow_unicode=True).strip()
    return "" if value is None else str(value)


def _attr(name: str, value: Any) -> str:
    return f' {name}="{escape(str(value))}"'


def control(one: Input, value: Any = None, bare: bool = False) -> str:
    """The input element of one setting (``value``: what it shows, default its own)."""
    value = one.value if value is None and not bare else value
    ident = f"in-{one.path}"
    common = _attr("id", ident) + ("" if one.fixed else _attr("name", one.path))
    if one.fixed:
        return f'<input type="text" readonly{common}{_attr("value", as_text(one, value))}>'
    if one.widget == "select":
        options = ([("", "(none)")] if one.nullable or not one.has_default else []) + [(c, c) for c in one.choices]
        shown = as_text(one, value)
        items = "".join(f'<option{_attr("value", v)}{" selected" if v == shown else ""}>{escape(label)}</option>'
                        for v, label in options)
        return f"<select{common}>{items}</select>"
    if one.widget == "checkbox":
        return f'<input type="checkbox"{common}{" checked" if value else ""}>'
    if one.widget == "number":
        bounds = (_attr("min", one.minimum) if one.minimum is not None else "") + \
                 (_attr("max", one.maximum) if one.maximum is not None else "")
        step = "1" if one.integer else "any"
        return f'<input type="number"{common}{bounds}{_attr("step", step)}{_attr("value", as_text(one, value))}>'
    if one.widget in ("lines", "yaml"):
        text = as_text(one, value)
        rows = max(2, min(12, text.count("\n") + 2))
        kind = "yaml" if one.widget == "yaml" else "lines"
        return f'<textarea class="{kind}" rows="{rows}"{common}>{escape(text)}</textarea>'
    return f'<input type="text"{common}{_attr("value", as_text(one, value))}>'


def setting(one: Input) -> str:
    default = ""
    if one.has_default and not one.fixed:
        default = (f'<button type="button" class="default"{_attr("data-default", as_text(one, one.default))}>'
                   "Default</button>")
    hint = {"lines": " (one per line)", "yaml": " (YAML)"}.get(one.widget, "")
    return (f'<div class="setting"{_attr("data-path", one.path)}><label for="in-{escape(one.path)}">'
            f"{escape(one.name)}{hint}</label> {control(one)} {default}"
            f'<small class="help">{escape(one.help)}</small><div class="problem" hidden></div></div>')


def section(one: Section, depth: int = 0) -> str:
    inner = "".join(setting(i) for i in one.inputs) + "".join(section(s, depth + 1) for s in one.sections)
    return (f'<fieldset class="section"{_attr("data-path", one.path)}><legend>{escape(one.path)}</legend>'
            f'<small class="help">{escape(one.help)}</small><div class="problem" hidden></div>{inner}</fieldset>')


#: the columns of the field rules' table, in ``FieldRule``'s order after the policy
PARTS = ("value", "attribute", "prefix", "transforms", "on_clash")


def field_row(row: FieldRow, stats: dict[str, str]) -> str:
    by_part = {i.name: i for i in row.inputs}
    default = {p: as_text(by_part[p], row.default.get(p)) for p in by_part}
    cells = [f'<td class="l"><b>{escape(row.label)}</b><br><code>{escape(row.name)}</code></td>',
             f"<td>{control(by_part['policy'])}</td>"]
    for part in PARTS:
        one = by_part.get(part)
        cell = control(one) if one is not None else ""
        if part == "attribute" and one is not None:
            shown = stats.get(one.value or "", "")
            cell += f'<small class="stats">{escape(shown)}</small>'
        cells.append(f'<td class="{part}">{cell}</td>')
    cells.append('<td><button type="button" class="default-rule">Default</button>'
                 '<div class="problem" hidden></div></td>')
    return (f'<tr class="field"{_attr("data-path", f"fields.{row.name}")}{_attr("data-default", json.dumps(default))}>'
            + "".join(cells) + "</tr>")


def fields_table(rows: list[FieldRow], stats: dict[str, str]) -> str:
    head = "".join(f"<th>{p}</th>" for p in ("field", "policy", *PARTS, ""))
    body = "".join(field_row(r, stats) for r in rows)
    return (f'<fieldset class="section" data-path="fields"><legend>fields</legend><small class="help">per field of '
            f"the users table, the policy the sync follows; the last read's statistics beside each attribute"
            f'</small><div class="problem" hidden></div><table class="fields"{_attr("data-stats", json.dumps(stats))}>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></fieldset>")


def rules_inputs(form: RulesForm, stats: dict[str, str], only: tuple[str, ...] = ()) -> str:
    """Every section of the form (``only``: those sections) and the field rules' table."""
    sections = [s for s in form.sections if not only or s.path in only]
    return "".join(section(s) for s in sections) + fields_table(form.fields, stats)


STYLE = """
form.rules fieldset{border:1px solid #ddd;margin:.6rem 0;padding:.4rem .8rem}
form.rules legend{font-weight:bold}.setting{margin:.25rem 0}.setting label{display:inline-block;min-width:14rem}
.help{display:block;color:#666;font-size:.8rem}.problem{color:#c62828;font-weight:bold}
.stats{display:block;color:#555;font-size:.75rem;max-width:22rem}
table.fields td{vertical-align:top;text-align:left}table.fields textarea{width:9rem}
.invalid{outline:2px solid #c62828}#status.ok{color:#2e7d32}#status.bad{color:#c62828}
pre.diff{background:#f6f6f6;padding:.5rem;max-height:20rem;overflow:auto}
.actions button{margin-right:.5rem}.said{background:#e8f5e9;padding:.4rem}.warn-box{background:#fff3e0;padding:.4rem}
"""


def script(check_url: str) -> str:
    """Validation as you type (the same located messages as ``usersync rules validate``), the policy's parts
    shown, *Default* and *Reload*."""
    parts = json.dumps(POLICY_PARTS)
    return f"""<script>
(() => {{
const form = document.querySelector('form.rules'); if (!form) return;
const PARTS = {parts};
const status = document.getElementById('status');
function showParts(row) {{
  const policy = row.querySelector('select[name$=".policy"]').value;
  for (const part of {json.dumps(list(PARTS))}) {{
    const cell = row.querySelector('td.' + part);
    if (cell) cell.style.visibility = (PARTS[policy] || []).includes(part) ? 'visible' : 'hidden';
  }}
}}
function stats(row) {{
  const input = row.querySelector('td.attribute input'); if (!input) return;
  const all = JSON.parse(row.closest('table').dataset.stats || '{{}}');
  row.querySelector('td.attribute .stats').textContent = input.value ? (all[input.value] || 'not read by the last run') : '';
}}
function where(loc) {{
  let best = null;
  for (const el of form.querySelectorAll('[data-path]')) {{
    const p = el.dataset.path;
    if ((loc === p || loc.startsWith(p + '.')) && (!best || p.length > best.dataset.path.length)) best = el;
  }}
  return best;
}}
let timer = null, seq = 0;
async function check() {{
  const mine = ++seq;
  const answer = await fetch({json.dumps(check_url)}, {{method: 'POST', body: new URLSearchParams(new FormData(form)),
                                                  credentials: 'same-origin'}});
  if (mine !== seq) return;
  const data = await answer.json();
  for (const el of form.querySelectorAll('.problem')) {{ el.hidden = true; el.textContent = ''; }}
  for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
  const said = [];
  for (const [loc, msg] of data.problems || []) {{
    const line = (loc ? loc + ': ' : '') + msg;
    const el = where(loc);
    const box = el && el.querySelector(':scope > .problem, :scope td .problem');
    if (box) {{ box.hidden = false; box.textContent += (box.textContent ? ' · ' : '') + line;
               el.classList.add('invalid'); }}
    said.push(line);
  }}
  const n = said.length;
  status.className = n ? 'bad' : 'ok';
  status.textContent = n ? n + ' problem(s): ' + said.join(' · ') : 'valid: usersync rules validate would say ok';
  const diff = document.getElementById('diff'); if (diff) diff.textContent = data.diff || '(no change against the live file)';
  const text = document.getElementById('yaml'); if (text && data.yaml !== undefined) text.value = data.yaml;
  for (const b of form.querySelectorAll('button.needs-valid')) b.disabled = n > 0;
}}
function soon() {{ clearTimeout(timer); timer = setTimeout(check, 250); }}
form.addEventListener('input', soon);
form.addEventListener('change', e => {{
  const row = e.target.closest('tr.field'); if (row) {{ showParts(row); stats(row); }} soon(); }});
form.addEventListener('click', e => {{
  const b = e.target;
  if (b.classList.contains('default')) {{
    const input = b.parentElement.querySelector('input, select, textarea');
    if (input.type === 'checkbox') input.checked = b.dataset.default === 'true'; else input.value = b.dataset.default;
    soon();
  }} else if (b.classList.contains('default-rule')) {{
    const row = b.closest('tr.field'), values = JSON.parse(row.dataset.default);
    for (const [part, value] of Object.entries(values)) {{
      const input = row.querySelector('[name$=".' + part + '"]');
      if (!input) continue;
      if (input.type === 'checkbox') input.checked = value === 'true'; else input.value = value;
    }}
    showParts(row); stats(row); soon();
  }} else if (b.classList.contains('reload')) {{
    form.reset(); for (const row of form.querySelectorAll('tr.field')) {{ showParts(row); stats(row); }} soon();
  }}
}});
for (const row of form.querySelectorAll('tr.field')) {{ showParts(row); stats(row); }}
check();
}})();
</script>"""
