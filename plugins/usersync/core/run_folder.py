"""Run data: the files one sync run hands from task to task, and the small references that travel by XCom.

A run folder ``<base>/<dag id>/<run id>/`` holds Parquet tables (records, mapped users, the change set). Tasks
may run on different machines, so the folder is any path object with pathlib's interface — a local
``pathlib.Path`` in tests, Airflow's ``ObjectStoragePath`` (local folder, S3, GCS, …) in the DAG. What goes to
XCom is a ``TableRef``: file name, row count, size, format version and SHA-256 — a few hundred bytes whatever
the directory size. Every read checks the checksum, so a file deleted or damaged between tasks is an error
that names the file, never a silently smaller directory ("everyone left").
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from usersync.core.errors import UsersyncError

log = logging.getLogger(__name__)

#: Bumped when the layout of run files changes; a reader refuses files of another version.
FORMAT_VERSION = 1
MANIFEST = "run.json"


def folder_name(run_id: str) -> str:
    """A run id as one folder name, injectively: letters, digits and ``-`` stay, every other byte becomes ``_xx``
    (hex). Two run ids never share a folder, and no folder is hidden, ``.`` or ``..``."""
    return "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) == "-") else f"_{b:02x}"
                   for b in run_id.encode("utf-8"))


class RunDataError(UsersyncError, RuntimeError):
    """A run file is missing, damaged or of another format version; nothing was written."""


@dataclass(frozen=True)
class TableRef:
    """Where one table of a run is and how to recognise it (JSON-able, no data)."""

    file: str  # relative to the run folder
    rows: int
    bytes: int
    sha256: str
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableRef:
        return cls(**data)


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target):
        self.target, self.sha, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.target.write(view.tobytes() if not isinstance(data, bytes) else data)
        return len(view)

    def tell(self) -> int:
        return self.size


class RunFolder:
    """One run's folder. ``path`` supports ``/``, ``open``, ``mkdir``, ``exists`` (pathlib or UPath)."""

    def __init__(self, path):
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def _file(self, name: str):
        """``name`` inside the run folder: relative, with no empty, dot or dot-dot segment (a reference in a
        summary or XCom that points elsewhere is refused, never followed)."""
        parts = name.split("/")
        if not name or "\\" in name or ":" in name or any(not p or p.startswith(".") for p in parts):
            raise RunDataError(f"run file name {name!r} is not a plain path inside the run folder; refusing it")
        return self.path / name

    def write(self, name: str, batches: Iterable[pa.RecordBatch] | pa.Table, schema: pa.Schema) -> TableRef:
        """Write record batches (or a table) as one Parquet file; returns its reference."""
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        with target.open("wb") as raw:
            sink = _HashingWriter(raw)
            with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
                for batch in batches.to_batches(max_chunksize=50_000) if isinstance(batches, pa.Table) else batches:
                    if batch.num_rows:
                        writer.write_batch(batch)
                        rows += batch.num_rows
            size, digest = sink.size, sink.sha.hexdigest()
        return TableRef(name, rows, size, digest)

    def _verified(self, ref: TableRef) -> pq.ParquetFile:
        where = self._file(ref.file)
        if ref.format != FORMAT_VERSION:
            raise RunDataError(f"run file {where} has format {ref.format}; this version reads format {FORMAT_VERSION}")
        try:
            size = where.stat().st_size
            if size != ref.bytes:  # checked before reading: a reference never makes a step read more than it wrote
                raise RunDataError(f"run file {where} is damaged: {size} bytes, not the {ref.bytes} bytes the previous "
                                   "task wrote; nothing was written — run the DAG again")
            with where.open("rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise RunDataError(f"run file {where} is missing (deleted before this task read it?)") from None
        except OSError as exc:
            raise RunDataError(f"run file {where} cannot be read: {exc}") from None
        if len(data) != ref.bytes or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise RunDataError(
                f"run file {where} is damaged: {len(data)} bytes with another checksum than the {ref.bytes} "
                "bytes the previous task wrote; nothing was written — run the DAG again"
            )
        return pq.ParquetFile(pa.BufferReader(data))

    def read(self, ref: TableRef, columns: list[str] | None = None) -> pa.Table:
        return self._verified(ref).read(columns=columns)

    def batches(self, ref: TableRef, batch_size: int = 50_000) -> Iterator[pa.RecordBatch]:
        yield from self._verified(ref).iter_batches(batch_size=batch_size)

    def head(self, ref: TableRef, rows: int) -> pa.Table:
        """The first ``rows`` rows only (a report's preview of a large change set)."""
        parquet = self._verified(ref)
        out, have = [], 0
        if rows > 0:
            for batch in parquet.iter_batches(batch_size=min(rows, 50_000)):
                out.append(batch.slice(0, rows - have))
                have += out[-1].num_rows
                if have >= rows:
                    break
        return pa.Table.from_batches(out, schema=parquet.schema_arrow)

    def write_manifest(self, **facts: Any) -> None:
        """``run.json``: when the run started (for pruning) and what it is, readable on any storage."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._file(MANIFEST).open("w") as fh:
            json.dump({"created": time.time(), "format": FORMAT_VERSION, **facts}, fh)

    def write_json(self, name: str, data: Any) -> None:
        """A small JSON document of the run (e.g. one step's part of an account's explanation)."""
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as fh:
            json.dump(data, fh)

    def read_json(self, name: str) -> Any:
        """A JSON document ``write_json`` wrote; None when the run has none (its step did not run)."""
        target = self._file(name)
        if not target.exists():
            return None
        with target.open("r") as fh:
            return json.load(fh)

    def size(self) -> int:
        """Bytes under the folder (the benchmark reports it)."""
        total = 0
        for child in _walk(self.path):
            total += child.stat().st_size if isinstance(child, Path) else child.stat().get("size", 0)
        return total


def _walk(path) -> Iterator:
    for child in path.iterdir():
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


def _created(run_dir) -> float | None:
    try:
        with (run_dir / MANIFEST).open("r") as fh:
            return float(json.load(fh)["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_tree(path) -> None:
    if isinstance(path, Path):
        shutil.rmtree(path)
    else:  # UPath / ObjectStoragePath: the fsspec filesystem removes the prefix
        path.fs.rm(path.path, recursive=True)


def prune_runs(dag_folder, retention_days: int, now: float | None = None, keep: str | None = None) -> list[str]:
    """Remove the run folders under ``dag_folder`` created more than ``retention_days`` ago (as reports).

    A folder without a readable manifest is left alone: it may be a run that is starting right now.
    """
    if not dag_folder.exists():
        return []
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    removed = []
    for run_dir in dag_folder.iterdir():
        if not run_dir.is_dir() or run_dir.name == keep:
            continue
        created = _created(run_dir)
        if created is not None and created < cutoff:
            _remove_tree(run_dir)
            removed.append(str(run_dir))
    return removed
