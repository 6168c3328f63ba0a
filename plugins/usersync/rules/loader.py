"""Reading rules files: YAML → ``Rules``, every problem named with its file, location and reason.

Administrators edit these files by hand, so an error says where (``source.page_size``, ``fields.email``) and
why, in one line each; a folder of rules files never lets one bad file hide the good ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from usersync.core.errors import UsersyncError
from usersync.rules.model import Rules
from usersync.sources.registry import SOURCE_TYPES


class RulesError(UsersyncError, ValueError):
    """A rules file that cannot be used; ``problems`` holds (location, reason) pairs."""

    def __init__(self, path: str | Path, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {line}" for line in problem_lines(problems))
        super().__init__(f"rules file {self.path} is invalid:\n{lines}")


def problem_lines(problems: list[tuple[str, str]]) -> list[str]:
    """Each (location, reason) as one line, as ``usersync rules validate`` says it: ``source.filter: …``."""
    return [f"{loc}: {msg}" if loc else msg for loc, msg in problems]


def _format_loc(loc: tuple, kind: str = "") -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "FieldRule"))]
    if len(parts) > 1 and parts[0] == "source" and parts[1] in SOURCE_TYPES:
        del parts[1]  # the discriminator tag pydantic adds
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        parts.append("type")
    return ".".join(parts)


def parse_rules(data: Any, path: str | Path = "<rules>") -> Rules:
    """Validate already-parsed YAML data; raises ``RulesError`` naming ``path``."""
    if not isinstance(data, dict):
        raise RulesError(path, [("", "the file must hold a mapping with 'source' and 'fields'")])
    if isinstance(data.get("source"), dict) and "name" not in data["source"] and path != "<rules>":
        data = {**data, "source": {**data["source"], "name": Path(path).stem}}
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            loc = _format_loc(err["loc"], err["type"])
            if loc == "fields" and msg.startswith("fields."):  # capability problems: one line each
                problems.extend((loc, reason) for loc, _, reason in (m.partition(": ") for m in msg.split("\n")))
            else:
                problems.append((loc, msg))
        raise RulesError(path, problems) from None


#: libyaml's loader when PyYAML has it (every task parses the rules folder: ~5× faster than the pure-Python one)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: ``<source>.draft.yaml`` beside ``<source>.yaml``: rules being prepared, previewed but never run on their own
DRAFT_MARK = ".draft"


def is_draft(path: str | Path) -> bool:
    return Path(path).stem.endswith(DRAFT_MARK)


def draft_path(live: str | Path) -> Path:
    """Where the draft of the rules file ``live`` is: beside it, ``<name>.draft.yaml``."""
    live = Path(live)
    return live.with_name(f"{live.stem}{DRAFT_MARK}{live.suffix}")


def load_draft(live_path: str | Path, live: Rules | None = None) -> Rules:
    """The draft rules of ``live_path``, validated like any rules file and against the live ones: a draft is
    previewed on the live source's users table, so it keeps the source's name and the target."""
    path = draft_path(live_path)
    if not path.exists():
        raise RulesError(path, [("", f"no draft rules file beside {Path(live_path).name}: write {path.name} to preview")])
    live = live or load_rules(live_path)
    draft = load_rules(path, name=live.source.name)
    problems = _draft_problems(draft, live)
    if problems:
        raise RulesError(path, problems)
    return draft


def _draft_problems(draft: Rules, live: Rules) -> list[tuple[str, str]]:
    problems = []
    if draft.source.name != live.source.name:
        problems.append(("source.name", f"a draft of source {live.source.name!r} must keep that name, not "
                                        f"{draft.source.name!r}"))
    if draft.target != live.target:
        problems.append(("target", "a draft is previewed against the live users table: keep the live 'target'"))
    return problems


def draft_from_text(text: str, live: Rules, where: str = "<draft sent with the run>") -> Rules:
    """Draft rules sent as text with a preview run (the console's, where the rules folder cannot be written).
    Whoever may trigger the DAG may send them, so besides a draft's own limits they keep the live source's type
    and connection: a preview never reads a directory the live rules do not."""
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise RulesError(where, [("", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if isinstance(data, dict) and isinstance(data.get("source"), dict) and "name" not in data["source"]:
        data = {**data, "source": {**data["source"], "name": live.source.name}}
    draft = parse_rules(data, where)
    problems = _draft_problems(draft, live)
    if (draft.source.type, draft.source.connection_id()) != (live.source.type, live.source.connection_id()):
        problems.append(("source.conn_id", "draft rules sent with a run keep the live source's type and connection "
                                           "(save the draft as a file to preview another)"))
    if problems:
        raise RulesError(where, problems)
    return draft


def load_rules(path: str | Path, name: str | None = None) -> Rules:
    """Read and validate one rules file. The source name defaults to ``name``, else the file name without
    ``.yaml``."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except OSError as exc:
        raise RulesError(path, [("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise RulesError(path, [("", f"not UTF-8: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
                                     "(save the file as UTF-8)")]) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
        raise RulesError(path, [("", f"not valid YAML: {at}{getattr(exc, 'problem', exc)}")]) from None
    if name and isinstance(data, dict) and isinstance(data.get("source"), dict) and "name" not in data["source"]:
        data = {**data, "source": {**data["source"], "name": name}}
    return parse_rules(data, path)


def load_rules_dir(directory: str | Path) -> tuple[dict[str, tuple[Rules, Path]], dict[str, RulesError]]:
    """All ``*.yaml`` files of a folder: ((rules, path) by source name, errors by file path).

    A bad file never hides the good ones; two files claiming the same source name are both an error for the
    second one, so a copy-paste never makes two DAGs fight over the same users. Draft files
    (``<source>.draft.yaml``) are no sources of their own: they are validated against their live file, and a
    broken one is an error like any other, while the live DAG keeps running.
    """
    valid: dict[str, tuple[Rules, Path]] = {}
    errors: dict[str, RulesError] = {}
    paths = sorted(Path(directory).glob("*.y*ml"))
    for path in (p for p in paths if not is_draft(p)):
        try:
            rules = load_rules(path)
        except RulesError as exc:
            errors[str(path)] = exc
            continue
        name = rules.source.name
        if name in valid:
            errors[str(path)] = RulesError(path, [("source.name", f"'{name}' is already used by {valid[name][1]}")])
            continue
        valid[name] = (rules, path)
    live_of = {path: rules for rules, path in valid.values()}
    for path in (p for p in paths if is_draft(p)):
        live_path = path.with_name(path.name.replace(DRAFT_MARK, "", 1))
        try:
            if live_path not in live_of:
                raise RulesError(path, [("", f"a draft of {live_path.name}, which is missing or invalid: drafts are "
                                             "previewed by their live source's DAG")])
            load_draft(live_path, live_of[live_path])
        except RulesError as exc:
            errors[str(path)] = exc
    return valid, errors
