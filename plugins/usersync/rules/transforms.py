"""Named value transforms a rule can chain after reading a source attribute.

Each takes a string and returns a string (or a bool for the ``*_flag`` ones). A transform that cannot make
sense of its input raises ``TransformError``; the mapper turns that into a skipped user with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class TransformError(ValueError):
    """The value does not fit the transform (e.g. no digits where digits are required)."""


_SIP = re.compile(r"^(?:sips?:)?([^@;]+)(?:@[^;]*)?(?:;.*)?$", re.IGNORECASE)
_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f", ""}


def _digits(value: str, _arg: str | None) -> str:
    """Keep digits only: '+39 (0461) 12-34' → '39046112 34' without blanks."""
    return re.sub(r"\D", "", value)


def _sip_user(value: str, _arg: str | None) -> str:
    """'sip:1234@corp.example' → '1234' (Skype for Business / Lync SIP URI)."""
    m = _SIP.match(value.strip())
    if not m or not m.group(1):
        raise TransformError(f"not a SIP URI: {value!r}")
    return m.group(1)


def _last(value: str, arg: str | None) -> str:
    """Last N characters: with digits, 'last:4' turns a DDI number into its extension."""
    n = int(arg or 0)
    return value[-n:] if n else value


def _local_part(value: str, _arg: str | None) -> str:
    """'john.smith@corp.example' → 'john.smith'."""
    return value.split("@", 1)[0]


def _flag(value: str, _arg: str | None) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise TransformError(f"not a boolean: {value!r}")


def _ad_enabled(value: str, _arg: str | None) -> bool:
    """AD userAccountControl → enabled: bit 2 (ACCOUNTDISABLE) unset."""
    try:
        return not (int(value) & 2)
    except ValueError as exc:
        raise TransformError(f"userAccountControl is not an integer: {value!r}") from exc


def _cucm_active(value: str, _arg: str | None) -> bool:
    """CUCM end-user status: 1 active, 2 inactive (an LDAP-synced user deleted in AD)."""
    if value.strip() not in ("1", "2"):
        raise TransformError(f"CUCM status is not 1 or 2: {value!r}")
    return value.strip() == "1"


TRANSFORMS: dict[str, Callable[[str, str | None], object]] = {
    "strip": lambda v, _a: v.strip(),
    "lower": lambda v, _a: v.lower(),
    "upper": lambda v, _a: v.upper(),
    "title": lambda v, _a: v.title(),
    "digits": _digits,
    "sip_user": _sip_user,
    "last": _last,
    "local_part": _local_part,
    "flag": _flag,
    "ad_enabled": _ad_enabled,
    "cucm_active": _cucm_active,
}
#: Transforms that need an argument written as ``name:arg``.
NEEDS_ARG = {"last"}
#: Transforms that turn a string into a bool (only for bool fields, and only last in the chain).
BOOL_TRANSFORMS = {"flag", "ad_enabled", "cucm_active"}


def parse(spec: str) -> tuple[str, str | None]:
    """'last:4' → ('last', '4'); validates the name and the argument."""
    name, _, arg = spec.partition(":")
    name = name.strip()
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
    if name in NEEDS_ARG:
        if not arg.strip().isdigit() or int(arg) <= 0:
            raise ValueError(f"transform {name!r} needs a positive number, e.g. '{name}:4'")
    elif arg:
        raise ValueError(f"transform {name!r} takes no argument")
    return name, (arg.strip() or None)


Chain = tuple[tuple[str, Callable[[str, "str | None"], object], "str | None"], ...]


def compile_chain(chain: list[str]) -> Chain:
    """Parse a chain once (per run, not per record): ((name, function, argument), …)."""
    return tuple((name, TRANSFORMS[name], arg) for name, arg in map(parse, chain))


def run_chain(value: str, chain: Chain) -> object:
    """Run ``value`` through each compiled transform in order."""
    out: object = value
    for name, transform, arg in chain:
        if not isinstance(out, str):
            raise TransformError(f"transform {name!r} got a non-text value")
        out = transform(out, arg)
    return out


def apply_chain(value: str, chain: list[str]) -> object:
    """Run ``value`` through each named transform in order."""
    return run_chain(value, compile_chain(chain))
