"""CSV import source: one file, UTF-8 with or without BOM, comma or semicolon separated, quoted fields.

The header is checked against the rules before any row is read; each row becomes a record whose account is
``<file> line <n>``, so skipped rows can be found and fixed. Python's csv module is used rather than pandas
because it reports physical line numbers, also for quoted fields spanning lines.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from usersync.core.connection import ConnectionFields
from usersync.core.paths import configured
from usersync.core.progress import Progress
from usersync.sources.base import OneAccount, ScopeCheck, Source, missing
from usersync.sources.csvfile.spec import CsvSourceSpec
from usersync.sources.errors import SourceQueryError
from usersync.sources.read_state import SourceInfo
from usersync.sources.record import SourceRecord
from usersync.sources.spec import SourceSpecBase

log = logging.getLogger(__name__)


def resolve_import(imports_dir: Path, name: str) -> Path:
    """The file ``name`` inside ``imports_dir``; anything outside it (``../``, absolute paths) is refused."""
    root = Path(imports_dir).resolve()
    path = (root / name).resolve()
    if root not in path.parents:
        raise SourceQueryError(f"{name!r} is not inside the imports folder {root}")
    if not path.is_file():
        raise SourceQueryError(f"no file {name!r} in the imports folder {root}")
    return path


def imports_dir(spec: CsvSourceSpec) -> Path:
    """The folder imports are read from: the rules' ``imports_dir``, else $USERSYNC_IMPORTS_DIR, else
    $USERSYNC_HOME/imports."""
    return configured(spec.imports_dir, "USERSYNC_IMPORTS_DIR", "imports")


def _delimiter(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","


class CsvSource(Source):

    spec: CsvSourceSpec
    empty_hint = "an empty file, or only its header line? the wrong file chosen?"
    def __init__(self, spec: CsvSourceSpec, path: Path, attributes: list[str]):
        self.spec, self.path, self.attributes = spec, Path(path), attributes

    @classmethod
    def from_rules(cls, spec: SourceSpecBase, attributes: list[str], connection: ConnectionFields | None,
                   params: Mapping[str, Any]) -> CsvSource:
        """The file named by the trigger parameter ``file``, inside the imports folder."""
        assert isinstance(spec, CsvSourceSpec)
        name = str(params.get("file") or "").strip()
        if not name:
            raise SourceQueryError("no CSV file given: trigger the import with the parameter 'file'")
        return cls(spec, resolve_import(imports_dir(spec), name), attributes)

    def _open(self):
        return self.path.open(encoding="utf-8-sig", newline="")

    def _header(self) -> tuple[list[str], str]:
        try:
            with self._open() as f:
                first = f.readline()
        except UnicodeDecodeError as e:
            raise SourceQueryError(f"{self.path.name} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        if not first.strip():
            raise SourceQueryError(f"{self.path.name} is empty: the first line must be the header")
        delimiter = _delimiter(first)
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        return header, delimiter

    def check(self) -> SourceInfo:
        header, delimiter = self._header()
        lacking = missing(self.attributes, header)
        if lacking:
            raise SourceQueryError(
                f"{self.path.name}: the header lacks the column(s) {', '.join(lacking)} that the rules use "
                f"(header: {', '.join(header)})"
            )
        return SourceInfo(url=f"file {self.path.name}", warnings=[], where={"file": str(self.path)},
                          own={"delimiter": delimiter})

    def records(self, info: SourceInfo) -> Iterator[SourceRecord]:
        header, delimiter = self._header()
        progress = Progress(f"read {self.path.name}", log)
        with self._open() as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader)
            try:
                for row in reader:
                    if not any(cell.strip() for cell in row):
                        continue  # blank lines are not users
                    account = f"{self.path.name} line {reader.line_num}"
                    problem = None
                    if len(row) != len(header):
                        problem = f"has {len(row)} fields, the header has {len(header)}"
                    yield SourceRecord(account, dict(zip(header, row)), problem)
                    progress.advance()
            except csv.Error as e:
                raise SourceQueryError(f"{self.path.name} line {reader.line_num}: {e}") from None
            except UnicodeDecodeError as e:
                raise SourceQueryError(f"{self.path.name} is not UTF-8 text ({e.reason})") from None
        progress.done()

    def read_one(self, info: SourceInfo, account: str) -> OneAccount:
        """The account's line of the file: the line whose key column holds ``account`` (case-insensitively), or
        the line ``account`` names (``line 12``). A key on two lines is a duplicate the import skips."""
        wanted = account.strip().casefold()
        line = wanted.removeprefix("line").strip() if wanted.startswith("line") else None
        hits = [r for r in self.records(info)
                if (r.get(self.spec.key_attribute) or "").casefold() == wanted
                or (line is not None and r.account.endswith(f" line {line}"))]
        found = OneAccount(account, hits[0] if hits else None, f"{self.spec.key_attribute} = {account!r} in "
                           f"{self.path.name}", requests=1, entries=len(hits))
        if len(hits) > 1:
            found.checks.append(ScopeCheck("one line per account", False, "the key is on "
                                           f"{', '.join(h.account for h in hits)}: the import skips every copy"))
        return found
