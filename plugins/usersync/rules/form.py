"""The rules editor's form, generated from the rules model itself: one input per setting of ``Rules`` and of the
source type's spec, its widget chosen from the setting's type, its help from the ``#:`` comment above it, its
default from the model. A new rules option appears in the console without any UI work.

Per users-table field the choice of policy is limited to those ``FIELDS`` allows for that field, and the value is a
checkbox for yes/no fields. What the walker cannot show as a plain input (lists and maps of settings such as
``notify`` or ``match``) is edited as a YAML snippet in place. Pure data in, data out: no HTML here.
"""

from __future__ import annotations

import ast
import copy
import enum
import inspect
import textwrap
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel

from usersync.rules.fields import FIELDS, Kind, Policy
from usersync.rules.model import FieldRule, Rules
from usersync.sources.registry import spec_class

#: a setting without a default (the rules must give it)
REQUIRED = object()
#: settings shown but not edited here: renaming a source renames its DAG, and the type picks the spec
FIXED = frozenset({"source.name", "source.type"})

Widget = Literal["select", "checkbox", "number", "text", "lines", "yaml"]


@dataclass(frozen=True)
class Input:
    """One setting as the form shows it: where it is (``safety.max_deletes``), how it is edited, what it holds."""

    path: str
    widget: Widget
    value: Any
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    nullable: bool = False
    fixed: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def has_default(self) -> bool:
        return self.default is not REQUIRED


@dataclass
class Section:
    """A group of inputs (``safety``, ``source.delta``), nested as the model nests."""

    path: str
    help: str = ""
    inputs: list[Input] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def all_inputs(self) -> list[Input]:
        return [*self.inputs, *(i for s in self.sections for i in s.all_inputs())]


#: the parts of a field rule each policy uses (``FieldRule`` refuses the others; a test holds the two in step):
#: the form shows only these beside the chosen policy
POLICY_PARTS: dict[str, tuple[str, ...]] = {
    Policy.ON_INSERT.value: ("value",),
    Policy.IMPORT.value: ("attribute", "transforms", "on_clash"),
    Policy.PREFIX.value: ("prefix", "attribute", "transforms", "on_clash"),
    Policy.KEEP.value: (),
    Policy.DEFAULT_IF_EMPTY.value: ("value", "attribute", "transforms", "on_clash"),
}


@dataclass(frozen=True)
class FieldRow:
    """One users-table field: its label, kind, the inputs of its ``FieldRule`` (policy limited to what the field
    allows) and the rule the source type starts with (what *Default* puts back)."""

    name: str
    label: str
    kind: str
    inputs: tuple[Input, ...]
    default: dict[str, Any]


@dataclass
class RulesForm:
    source_type: str
    sections: list[Section]
    fields: list[FieldRow]

    def inputs(self) -> list[Input]:
        return [*(i for s in self.sections for i in s.all_inputs()), *(i for r in self.fields for i in r.inputs)]


def rules_form(effective: Mapping[str, Any]) -> RulesForm:
    """The form of a rules file whose effective settings (``Rules.model_dump(mode="json")``, or raw data of a
    file that does not validate) are ``effective``."""
    source = effective.get("source") or {}
    spec = spec_class(source.get("type"))
    if spec is None:
        raise ValueError(f"unknown source type {source.get('type')!r}")
    sections = []
    for name, info in Rules.model_fields.items():
        if name == "fields":
            continue
        model = spec if name == "source" else _model_of(info.annotation)
        value = effective.get(name)
        if model is not None and not _optional(info.annotation):
            sections.append(_section(model, value if isinstance(value, dict) else {}, name, _doc(Rules, name)))
        else:
            sections.append(Section(name, _doc(Rules, name), [_input(Rules, name, info, value, name)]))
    examples = spec.example_fields
    rows = [_field_row(name, (effective.get("fields") or {}).get(name), examples.get(name, "keep")) for name in FIELDS]
    return RulesForm(str(source.get("type")), sections, rows)


def _section(model: type[BaseModel], data: Mapping[str, Any], path: str, help: str) -> Section:
    section = Section(path, help or _class_doc(model))
    for name, info in model.model_fields.items():
        where = f"{path}.{name}"
        sub = _model_of(info.annotation)
        value = data.get(name, _default(info))
        if sub is not None and not _optional(info.annotation):
            section.sections.append(_section(sub, value if isinstance(value, dict) else {}, where, _doc(model, name)))
        else:
            section.inputs.append(_input(model, name, info, value, where))
    return section


def _field_row(name: str, rule: Any, example: Any) -> FieldRow:
    spec = FIELDS[name]
    rule = {"policy": rule} if isinstance(rule, str) else (rule or {"policy": "keep"})
    inputs = []
    for part, info in FieldRule.model_fields.items():
        where = f"fields.{name}.{part}"
        value = rule.get(part, _default(info))
        if part == "policy":
            allowed = tuple(p.value for p in Policy if p in spec.policies)
            inputs.append(Input(where, "select", value, REQUIRED, allowed, _doc(FieldRule, part)))
        elif part == "value" and not spec.constants:
            continue  # each user has their own: no fixed value
        elif part == "value":
            widget: Widget = "checkbox" if spec.kind is Kind.BOOL else "text"
            inputs.append(Input(where, widget, value, None, help=_doc(FieldRule, part), nullable=True))
        elif part == "on_clash" and spec.kind is not Kind.NUMBER:
            continue
        else:
            inputs.append(_input(FieldRule, part, info, value, where))
    default = {"policy": example} if isinstance(example, str) else dict(example)
    return FieldRow(name, spec.label or name, spec.kind.value, tuple(inputs), default)


def _input(model: type[BaseModel], name: str, info, value: Any, path: str) -> Input:
    default = _default(info)
    base, nullable = _unwrap(info.annotation)
    common = {"value": value, "default": default, "help": _doc(model, name), "nullable": nullable,
              "fixed": path in FIXED}
    origin = get_origin(base)
    if origin is Literal:
        return Input(path, "select", choices=tuple(str(c) for c in get_args(base)), **common)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return Input(path, "select", choices=tuple(str(m.value) for m in base), **common)
    if base is bool:
        return Input(path, "checkbox", **common)
    if base in (int, float):
        low, high = _bounds(info, base)
        return Input(path, "number", minimum=low, maximum=high, integer=base is int, **common)
    if base is str:
        return Input(path, "text", **common)
    if origin is list and get_args(base) and _unwrap(get_args(base)[0])[0] is str:
        return Input(path, "lines", **common)
    return Input(path, "yaml", **common)


def new_rules(source_type: str, name: str, conn_id: str | None, **source: Any) -> dict[str, Any]:
    """A new source's rules: the type's example source options and field rules, manual runs only (the schedule
    is enabled once a dry run has shown what the rules do)."""
    spec = spec_class(source_type)
    if spec is None:
        raise ValueError(f"unknown source type {source_type!r}")
    head = {"type": source_type, "name": name, **({"conn_id": conn_id} if conn_id else {})}
    return {"source": {**head, **spec.example_source, **source}, "schedule": {"auto": False},
            "fields": dict(spec.example_fields)}


# --- from the form back to settings ---------------------------------------------------------------------------

class FormProblem(ValueError):
    """A value the form cannot turn into a setting (a YAML snippet that does not parse): (path, reason)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def form_values(form: RulesForm, posted: Mapping[str, str], only: tuple[str, ...] = ()) -> dict[str, Any]:
    """What each input of ``form`` holds after a post (``posted``: input path → text; an unchecked checkbox is
    absent). A number that is not one is passed on as text, so the rules model names the problem where it is.
    ``only``: the sections the page showed (with the field rules); the others keep their values."""
    out: dict[str, Any] = {}
    for one in form.inputs():
        if one.fixed or (only and not one.path.startswith(tuple(f"{s}." for s in (*only, "fields")))):
            continue
        raw = posted.get(one.path)
        out[one.path] = _parse(one, raw)
    return out


def _parse(one: Input, raw: str | None) -> Any:
    if one.widget == "checkbox":  # unchecked: absent from the post; a field rule's value is then unset
        return True if raw is not None else (None if one.nullable else False)
    text = (raw or "").strip() if one.widget != "yaml" else (raw or "")
    if one.widget == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if one.widget == "yaml":
        if not text.strip():
            return None if one.nullable or one.default is None else one.default
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise FormProblem(one.path, f"not valid YAML: {where}{getattr(exc, 'problem', exc)}") from None
    if text == "":
        return None if (one.nullable or one.default is None or one.widget == "select") else ""
    if one.widget == "number":
        try:
            return int(text) if one.integer else float(text)
        except ValueError:
            return text
    return text


def settings(effective: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``effective`` with the form's ``values`` set at their paths: the data the rules model validates."""
    data = copy.deepcopy(dict(effective))
    for path, value in values.items():
        _set(data, path.split("."), value)
    for name, rule in (data.get("fields") or {}).items():
        if FIELDS[name].kind is Kind.BOOL and rule.get("policy") == "on_insert" and rule.get("value") is None:
            rule["value"] = False  # an unchecked box of an on-insert flag: the value false
        if rule.get("policy") == "prefix" and rule.get("prefix") is None:
            rule["prefix"] = ""  # an empty prefix box: no prefix (the value as it comes)
    data["fields"] = {name: compact_rule(rule) for name, rule in (data.get("fields") or {}).items()}
    return data


def compact_rule(rule: Any) -> Any:
    """A field rule as a file writes it: ``keep`` alone, else only the parts it sets."""
    if not isinstance(rule, dict):
        return rule
    parts = {k: v for k, v in rule.items() if v not in (None, [], "") or (k == "prefix" and v == "")}
    if parts.get("policy") != "prefix":
        parts.pop("prefix", None)
    if parts.get("policy") == "keep":
        return "keep"
    return parts


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The settings whose value differs, as paths (a field rule counts as one setting: ``fields.email``)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: list[str]) -> None:
        if path[:1] == ["fields"] and len(path) == 2:
            if compact_rule(a) != compact_rule(b):
                out.append(".".join(path))
            return
        if isinstance(a, dict) and isinstance(b, dict) and not _is_leaf_map(path):
            for key in [*a, *(k for k in b if k not in a)]:
                walk(a.get(key, _ABSENT), b.get(key, _ABSENT), [*path, str(key)])
        elif a != b:
            out.append(".".join(path))

    walk(before, after, [])
    return out


_ABSENT = object()


def _is_leaf_map(path: list[str]) -> bool:
    """Maps edited whole as YAML snippets (``safety.fields``, ``write_back``): one setting each."""
    return ".".join(path) in _YAML_PATHS()


@cache
def _YAML_PATHS() -> frozenset[str]:  # noqa: N802 - a constant computed once
    paths = set()
    for name, info in Rules.model_fields.items():
        model = _model_of(info.annotation)
        if model is None or _optional(info.annotation):
            paths.add(name)
            continue
        for sub, sub_info in model.model_fields.items():
            if _input(model, sub, sub_info, None, f"{name}.{sub}").widget == "yaml":
                paths.add(f"{name}.{sub}")
    return frozenset(paths - {"fields", "source"})


# --- the model's own words -------------------------------------------------------------------------------------

@cache
def _comments(model: type) -> dict[str, str]:
    """The ``#:`` comment lines above each attribute of ``model`` and its bases (what the rules docs say)."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
        except (OSError, TypeError):
            continue
        tree = ast.parse("\n".join(lines))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                above: list[str] = []
                i = node.lineno - 2
                while i >= 0 and lines[i].strip().startswith("#:"):
                    above.insert(0, lines[i].strip()[2:].strip())
                    i -= 1
                if above:
                    out[node.target.id] = " ".join(above)
    return out


def _doc(model: type, name: str) -> str:
    info = getattr(model, "model_fields", {}).get(name)
    return (info.description if info is not None and info.description else "") or _comments(model).get(name, "")


def _class_doc(model: type) -> str:
    return (inspect.getdoc(model) or "").split("\n\n", 1)[0].replace("\n", " ")


# --- types ----------------------------------------------------------------------------------------------------

def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); ``Annotated[X, …]`` → X."""
    nullable = False
    while True:
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            nullable = nullable or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return annotation, nullable
            annotation = args[0]
        elif str(origin) == "typing.Annotated" or getattr(annotation, "__metadata__", None) is not None:
            annotation = get_args(annotation)[0]
        else:
            return annotation, nullable


def _optional(annotation: Any) -> bool:
    return _unwrap(annotation)[1]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    base, _nullable = _unwrap(annotation)
    return base if isinstance(base, type) and issubclass(base, BaseModel) else None


def _default(info) -> Any:
    if info.is_required():
        return REQUIRED
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.value if isinstance(value, enum.Enum) else value


def _bounds(info, base: type) -> tuple[float | None, float | None]:
    low = high = None
    metadata = list(info.metadata)
    annotation = info.annotation
    while getattr(annotation, "__metadata__", None) is not None or get_origin(annotation) in (Union, types.UnionType):
        if getattr(annotation, "__metadata__", None) is not None:
            metadata += list(annotation.__metadata__)
            annotation = get_args(annotation)[0]
        else:
            annotation = next(a for a in get_args(annotation) if a is not type(None))
    for item in metadata:
        for inner in getattr(item, "metadata", [item]):
            if isinstance(inner, annotated_types.Ge | annotated_types.Gt):
                low = getattr(inner, "ge", getattr(inner, "gt", None))
            if isinstance(inner, annotated_types.Le | annotated_types.Lt):
                high = getattr(inner, "le", getattr(inner, "lt", None))
    return low, high


def _set(data: dict, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        nxt = data.get(key)
        if not isinstance(nxt, dict):
            nxt = {"policy": nxt} if isinstance(nxt, str) else {}
            data[key] = nxt
        data = nxt
    data[path[-1]] = value
