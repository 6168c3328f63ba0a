"""What one step hands the next: small JSON documents (references to run files, counts, cursors), typed.

These are the only things a run passes between tasks (Airflow keeps them in XCom): the data itself stays in
the run folder. Each document is a ``TypedDict``, so it is plain JSON on the wire and checked by mypy in code.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from usersync.plan.change_tables import PlanRef
from usersync.sources.read_state import SourceInfo

__all__ = ["Applied", "ExtractJob", "Extracted", "FileRef", "Mapped", "PlanRef", "SourceInfo", "StepFailure"]

#: a run file's reference: ``usersync.core.run_folder.TableRef.to_json()`` (file, rows, bytes, format, sha256)
FileRef = dict[str, Any]


class ExtractJob(TypedDict):
    """One ``extract`` task: its partition and what ``check`` found."""

    partition: int
    source_info: SourceInfo


class Extracted(TypedDict):
    """One partition read into ``records/``."""

    partition: int
    records: FileRef
    delta: bool
    cursor: NotRequired[str]  # where the next delta read starts (Graph's delta link)
    reading: NotRequired[str]  # a delta read that read in full instead, and why
    warnings: NotRequired[list[str]]  # what the read met that the report should say
    removed: NotRequired[FileRef]  # delta reads: the anchors gone since the watermark (partition 0)
    scanned: NotRequired[int]
    account: NotRequired[str]  # a single-account run: the account read


class Mapped(TypedDict):
    """One partition mapped into ``mapped/`` and ``skipped/``; the delta facts of its extract carried on."""

    read: int
    mapped: FileRef
    skipped: FileRef
    delta: NotRequired[bool]
    cursor: NotRequired[str]
    reading: NotRequired[str]
    warnings: NotRequired[list[str]]
    removed: NotRequired[FileRef]
    scanned: NotRequired[int]
    account: NotRequired[str]


class Applied(TypedDict, total=False):
    """What ``apply`` wrote (nothing in a dry run) and the first rows it left out because they changed."""

    dry_run: bool
    written: dict[str, int]
    conflicts: list[str]
    conflict_count: int
    cases: dict[str, int]  # what apply did to the cases: opened, changed, applied (decisions), closed


class StepFailure(TypedDict):
    """Why a step failed (passwords masked), for the report; ``blocked``: the mass-delete guard stopped it."""

    step: str
    type: str
    error: str
    traceback: str
    blocked: bool
    reading: NotRequired[str]  # how the source was read when the step failed, if not as planned
