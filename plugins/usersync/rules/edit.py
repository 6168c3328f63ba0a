"""Writing a change of settings into a rules file's text, in place: what changed is set where it is, everything else
(comments, key order, quoting, the field rules it does not touch) stays as the admin wrote it — the file stays the
reviewable source of truth, and its git diff shows the change only."""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Mapping
from typing import Any

from usersync.rules.form import Input, changed_paths, compact_rule

#: what a new rules file starts with
HEADER = ("# usersync rules for one source (written by the console; edit here or in the console).\n"
          "# Validate: usersync rules validate <this file>   Field choices: usersync rules fields\n")


def _yaml():
    from ruamel.yaml import YAML  # imported when a file is written, not by every process loading the plugin

    yaml = YAML()  # round trip: comments and order kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # long filters and DNs stay on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def edited_text(text: str, before: Mapping[str, Any], after: Mapping[str, Any], inputs: dict[str, Input]) -> str:
    """``text`` (a rules file whose effective settings are ``before``) changed to hold ``after``: each changed
    setting is set in place; one set back to an empty default is removed; a field rule is written compactly
    (``keep`` alone, else a one-line map of what it sets)."""
    changed = changed_paths(before, after)
    if not changed:
        return text
    from ruamel.yaml.comments import CommentedMap

    yaml = _yaml()
    doc = yaml.load(text) or CommentedMap()
    for path in changed:
        keys = path.split(".")
        new = _get(after, keys)
        if keys[0] == "fields":
            _put(doc, keys, _flow(compact_rule(new)))
            continue
        one = inputs.get(path)
        if new is None and (one is None or one.default is None):
            _drop(doc, keys)
        else:
            _put(doc, keys, new)
    out = io.StringIO()
    yaml.dump(doc, out)
    return _as_written(text, out.getvalue())


#: what a YAML dump may change in a line it did not mean to change: the spaces that align values after a key, a
#: block scalar's chomping sign
_LAYOUT = re.compile(r"(?<=:)[ \t]+|(?<=[>|])[-+](?=\s*$)")


def _as_written(original: str, dumped: str) -> str:
    """``dumped`` with each line that differs from ``original`` only in layout taken from ``original``."""
    old, new = original.splitlines(keepends=True), dumped.splitlines(keepends=True)
    key = [_LAYOUT.sub(" ", line).rstrip() for line in old], [_LAYOUT.sub(" ", line).rstrip() for line in new]
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, *key, autojunk=False).get_opcodes():
        out += old[i1:i2] if op == "equal" else new[j1:j2]
    return "".join(out)


def new_text(data: Mapping[str, Any]) -> str:
    """A new rules file holding ``data`` (sections in the model's order, field rules one per line)."""
    from ruamel.yaml.comments import CommentedMap

    doc = CommentedMap()
    for key, value in data.items():
        if key == "fields":
            doc[key] = CommentedMap((name, _flow(compact_rule(rule))) for name, rule in value.items())
        else:
            doc[key] = value
    out = io.StringIO(HEADER)
    out.seek(0, io.SEEK_END)
    _yaml().dump(doc, out)
    return out.getvalue()


def text_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    """A unified diff of two rules texts ("" when they are the same)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        before_name, after_name))


def _flow(rule: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(rule, dict):
        return rule
    out = CommentedMap(rule)
    for key, value in rule.items():
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            out[key] = seq
    out.fa.set_flow_style()
    return out


def _get(data: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _put(doc: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        if not isinstance(doc.get(key), dict):
            doc[key] = type(doc)()
        doc = doc[key]
    doc[keys[-1]] = value


def _drop(doc: dict, keys: list[str]) -> None:
    parent: Any = doc
    for key in keys[:-1]:
        parent = parent.get(key)
        if not isinstance(parent, dict):
            return
    parent.pop(keys[-1], None)
