"""SCIM attribute paths as a rules file names them, resolved on a returned resource the way RFC 7644 §3.10 reads
them: ``userName``, ``name.givenName``, ``emails[type eq "work"].value``, ``phoneNumbers[type eq "work"].value``,
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``.

A value filter (``[…]``) is not attribute notation, so a provider may refuse it in ``attributes=`` (RFC 7644
§3.4.2.5); the read asks for the whole attribute (``emails``) and the filter is applied here. Of several values
left, the ``primary`` one comes first, then the provider's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: a schema URN before the attribute: ``urn:…:User:department`` (the URN ends at the last colon before the name)
_URN = re.compile(r"^(?P<urn>urn:[^\[\]]+):(?P<rest>[A-Za-z$][\w$-]*(?:\[.*\])?(?:\.[A-Za-z$][\w$-]*)?)$", re.I)
_PATH = re.compile(r"^(?P<attr>[A-Za-z$][\w$-]*)(?:\[(?P<filter>[^\[\]]+)\])?(?:\.(?P<sub>[A-Za-z$][\w$-]*))?$")
_TERM = re.compile(r'^\s*(?P<attr>[A-Za-z$][\w$-]*)\s+(?P<op>eq|ne|co|sw|ew|pr)\b\s*(?P<value>"(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?)?\s*$',
                   re.I)


class PathError(ValueError):
    """A path the rules name that is not a SCIM attribute path this source can resolve."""


@dataclass(frozen=True)
class Term:
    attr: str
    op: str
    value: Any

    def test(self, item: dict[str, Any]) -> bool:
        found = attribute(item, self.attr)
        if self.op == "pr":
            return found not in (None, "", [])
        if isinstance(self.value, str) and isinstance(found, str):
            a, b = found.lower(), self.value.lower()  # sub-attribute values compare case-insensitively (caseExact false)
        else:
            a, b = found, self.value
        if self.op == "eq":
            return a == b
        if self.op == "ne":
            return a != b
        if not isinstance(a, str) or not isinstance(b, str):
            return False
        return {"co": b in a, "sw": a.startswith(b), "ew": a.endswith(b)}[self.op]


@dataclass(frozen=True)
class AttributePath:
    """One parsed path: the schema URN (None: the core schema), the attribute, its value filter (terms joined by
    ``and``) and its sub-attribute."""

    text: str
    urn: str | None
    attr: str
    terms: tuple[Term, ...] = ()
    sub: str | None = None

    @property
    def requested(self) -> str:
        """What ``attributes=`` asks for: the attribute in attribute notation (a filtered one whole)."""
        name = self.attr if self.terms else (f"{self.attr}.{self.sub}" if self.sub else self.attr)
        return f"{self.urn}:{name}" if self.urn else name

    def resolve(self, resource: dict[str, Any]) -> str | None:
        """The path's value on ``resource`` as text (booleans ``true``/``false``); None when absent or empty."""
        holder = resource
        if self.urn:
            holder = next((v for k, v in resource.items() if k.lower() == self.urn.lower() and isinstance(v, dict)), {})
        value = attribute(holder, self.attr)
        if isinstance(value, list):
            items = [v for v in value if not self.terms or (isinstance(v, dict) and all(t.test(v) for t in self.terms))]
            items.sort(key=lambda v: not (isinstance(v, dict) and attribute(v, "primary") is True))  # primary first, stable
            picked = [(attribute(v, self.sub or "value") if isinstance(v, dict) else v) for v in items]
            value = next((p for p in picked if p not in (None, "")), None)
        elif isinstance(value, dict):
            value = attribute(value, self.sub) if self.sub else None
        elif self.sub or self.terms:
            value = None
        if value is None or isinstance(value, (dict, list)):
            return None
        text = ("true" if value else "false") if isinstance(value, bool) else str(value).strip()
        return text or None


def attribute(item: dict[str, Any], name: str) -> Any:
    """An attribute by name, case-insensitively (SCIM attribute names are case-insensitive, RFC 7643 §2.1)."""
    if name in item:
        return item[name]
    lowered = name.lower()
    return next((v for k, v in item.items() if k.lower() == lowered), None)


def parse(text: str) -> AttributePath:
    """A path as the rules write it; PathError naming what is wrong."""
    raw = text.strip()
    urn = None
    m = _URN.match(raw)
    if m:
        urn, raw = m["urn"], m["rest"]
    p = _PATH.match(raw)
    if not p:
        raise PathError(f"{text!r} is not a SCIM attribute path (e.g. userName, name.givenName, "
                        'emails[type eq "work"].value, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department)')
    terms = tuple(_term(t, text) for t in re.split(r"\s+and\s+", p["filter"], flags=re.I)) if p["filter"] else ()
    return AttributePath(text, urn, p["attr"], terms, p["sub"])


def _term(text: str, path: str) -> Term:
    m = _TERM.match(text)
    if not m or (m["op"].lower() == "pr") != (m["value"] is None):
        raise PathError(f"{path!r}: the value filter [{text.strip()}] is not 'attribute op value' (eq, ne, co, sw, ew; "
                        'pr without a value; "and" between terms; strings in double quotes)')
    raw = m["value"]
    value: Any = None
    if raw is not None:
        low = raw.lower()
        if raw.startswith('"'):
            value = re.sub(r'\\(.)', r"\1", raw[1:-1])
        elif low in ("true", "false"):
            value = low == "true"
        elif low != "null":
            value = float(raw) if "." in raw else int(raw)
    return Term(m["attr"], m["op"].lower(), value)
