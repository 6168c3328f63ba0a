"""The rules folder as the console reads and writes it: the live rules (parsed once per file version, so a page
listing hundreds of sources does not validate hundreds of files per request), whether the folder may be written,
and writes that never leave a half-written file for the DAG processor to read."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from usersync.rules import Rules
from usersync.rules.loader import RulesError, is_draft, load_rules
from usersync_airflow.rules_location import rules_dir

_lock = threading.Lock()
#: path → ((mtime_ns, size), rules or the error): a file is validated again only when it changes
_parsed: dict[Path, tuple[tuple[int, int], Rules | RulesError]] = {}


def _version(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def parsed(path: Path) -> Rules | RulesError:
    """The rules of one file (or why it cannot be used), re-read only when the file changed."""
    version = _version(path)
    with _lock:
        seen = _parsed.get(path)
    if seen is not None and seen[0] == version:
        return seen[1]
    try:
        result: Rules | RulesError = load_rules(path)
    except RulesError as exc:
        result = exc
    with _lock:
        _parsed[path] = (version, result)
    return result


def live_rules() -> dict[str, tuple[Rules, Path, str]]:
    """Each valid live rules file of the folder: source → (rules, path, DAG id). A second file claiming a source
    name is left out, as the DAG factory leaves it out."""
    from usersync_airflow.dag.dag_factory import dag_id

    out: dict[str, tuple[Rules, Path, str]] = {}
    for path in sorted(rules_dir().glob("*.y*ml")):
        if is_draft(path):
            continue
        rules = parsed(path)
        if isinstance(rules, Rules) and rules.source.name not in out:
            out[rules.source.name] = (rules, path, dag_id(rules))
    return out


def broken_files() -> dict[str, RulesError]:
    """Live rules files that do not validate, by file name (the sources page lists them)."""
    return {p.name: r for p in sorted(rules_dir().glob("*.y*ml")) if not is_draft(p)
            and isinstance(r := parsed(p), RulesError)}


def writable() -> bool:
    """Whether the console may write the rules folder: not when ``USERSYNC_RULES_READ_ONLY`` says so (a folder a
    Git DAG bundle refreshes would lose the write), nor when a file cannot be created there (a read-only mount)."""
    if os.environ.get("USERSYNC_RULES_READ_ONLY", "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=rules_dir(), prefix=".usersync-probe-"):
            return True
    except OSError:
        return False


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it: a reader sees the old file or the
    new, never half of one (the temporary name is hidden and not ``.yaml``, so no DAG is made of it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


