"""The steps of one sync run as plain functions over run files, so any orchestrator can chain them.

check → extract (one call per partition) → map → diff. Each step reads the files the previous one wrote in
the run folder and returns a small JSON reference (file, rows, checksum) — the only thing the Airflow DAG
passes by XCom. Only ``check`` and ``extract`` know which kind of source they read. Writing is
``usersync.store.apply.apply_tables``, after the ``usersync.plan.safety`` check.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from usersync.core.progress import Progress
from usersync.core.run_folder import RunFolder, TableRef
from usersync.explain import explanation
from usersync.explain.fields import field_sections
from usersync.explain.match import absent_sections, match_sections
from usersync.explain.reading import identity, read_sections
from usersync.plan.change_guard import LastRead, field_shifts, places, read_drop, shifts_to_json
from usersync.plan.change_tables import ChangeTables
from usersync.plan.mapping import map_records
from usersync.plan.read_plan import choose
from usersync.plan.tables import (
    SKIPPED_SCHEMA,
    mapped_batch,
    mapped_schema,
    record_batches,
    records_of,
    records_schema,
    skipped_batch,
    skipped_of,
    to_frame,
    value_fields_of,
)
from usersync.rules import Rules
from usersync.run.handover import Extracted, Mapped, PlanRef
from usersync.sources.base import Source
from usersync.sources.errors import EmptySource
from usersync.sources.read_state import ReadPosition, SourceInfo
from usersync.store.cases import live_decisions
from usersync.store.detach import DetachError, detach_plan
from usersync.store.recheck import fingerprint
from usersync.store.schema_version import ensure_schema
from usersync.store.source_health import last_read
from usersync.store.source_state import load_watermark
from usersync.store.users_read import users_table

log = logging.getLogger(__name__)
REMOVED_SCHEMA = pa.schema([("anchor", pa.string())])


def check_step(source: Source, rules: Rules | None = None, engine: Engine | None = None,
               full_sync: bool | str = False, account: str | None = None) -> SourceInfo:
    """Prove the source readable; for a delta source (``rules`` and the users ``engine`` given), choose how
    this run reads it — ``info["read"]`` (mode, reason, the watermark to store) and ``info["reading"]``.

    ``account``: a single-account run, which reads that account only and never moves a delta watermark."""
    info = source.check()
    for warning in info.get("warnings", []):
        log.warning("%s", warning)
    if account:
        info["account"] = account
        info["reading"] = (f"one account: {account!r} (the delta watermark is not moved)"
                           if rules is not None and rules.source.delta is not None else f"one account: {account!r}")
        return info
    if rules is not None and engine is not None and rules.source.delta is not None:
        read = choose(rules, load_watermark(engine, rules.source.name), ReadPosition.from_json(info["position"]),
                      source.position_holds, datetime.now(UTC), full_sync=full_sync)
        reading = read.describe(source.describe_position)
        info["read"], info["reading"] = read.to_json(), reading
        log.info("this run reads the source: %s", reading)
    return info


def is_delta(info: SourceInfo) -> bool:
    return (info.get("read") or {}).get("mode") == "delta"


def partitions(rules: Rules, info: SourceInfo) -> list[int]:
    """The partitions this run extracts: all of them for a full read, one for a delta or one account."""
    return [0] if is_delta(info) or info.get("account") else list(range(rules.source.partition_count))


def extract_step(source: Source, info: SourceInfo, attributes: list[str], folder: RunFolder,
                 index: int = 0, count: int = 1, rules: Rules | None = None) -> Extracted:
    """Read partition ``index`` of ``count`` into ``records/part-<index>.parquet``; returns its reference.

    A partition may be empty; the whole source may not: then this step fails, never "everyone left". A delta
    read may be empty (nothing changed); its partition 0 also lists the anchors gone since the watermark.
    """
    if info.get("account"):
        return one_account_step(source, info, attributes, folder, rules)
    batches = record_batches(source.partition(info, index, count), attributes)
    ref = folder.write(f"records/part-{index:03d}.parquet", batches, records_schema(attributes))
    if source.unique_by:
        ref = last_state_per_entity(folder, ref, source.unique_by)
    fallback = source.fallback  # a delta read that had to read in full (expired delta link)
    delta = is_delta(info) and not fallback
    if not delta and not ref.rows and (count == 1 or next(iter(source.records(info)), None) is None):
        raise _empty(info, source)  # an empty partition is fine; an empty source is an error, never "everyone left"
    log.info("extracted %d %srecords from %s (partition %d of %d) into %s", ref.rows,
             "changed " if delta else "", info.get("url"), index + 1, count, ref.file)
    out = Extracted(partition=index, records=ref.to_json(), delta=delta)
    if source.cursor:  # where the next delta read starts (stored by apply, if it applies)
        out["cursor"] = source.cursor
    if fallback:
        out["reading"] = f"full ({fallback})"
    if source.warnings:
        out["warnings"] = list(source.warnings)
    if delta and index == 0:
        anchors, scanned = source.removed(info, _anchors_read(folder, ref, attributes, source.spec.delta_anchor))
        removed = folder.write("removed/anchors.parquet", [pa.record_batch([pa.array(anchors, pa.string())],
                                                                           schema=REMOVED_SCHEMA)], REMOVED_SCHEMA)
        log.info("delta: %d account(s) deleted or out of scope since the watermark (%d entries scanned)",
                 len(anchors), scanned)
        out["removed"], out["scanned"] = removed.to_json(), scanned
    return out


def one_account_step(source: Source, info: SourceInfo, attributes: list[str], folder: RunFolder,
                     rules: Rules | None) -> Extracted:
    """Read the one account ``info["account"]`` names, server-side; its records file holds it only when the
    rules' scope takes it in. What was read and each scope test go to the account's explanation."""
    if rules is None:
        raise ValueError("a single-account read needs the rules (to explain it)")
    found = source.read_one(info, info["account"])
    records = [found.record] if found.record is not None and found.in_scope else []
    ref = folder.write("records/part-000.parquet", record_batches(records, attributes), records_schema(attributes))
    log.info("one account: %r — %s; %d request(s) to the source, %d entr%s returned, %s", found.asked, found.found_by,
             found.requests, found.entries, "y" if found.entries == 1 else "ies",
             "in scope" if found.in_scope else "not found" if found.record is None else "out of scope")
    explanation.save(folder, "extract", read_sections(rules, found, attributes, info.get("url", "the source")),
                     identity(rules, found))
    out = Extracted(partition=0, records=ref.to_json(), delta=False, account=found.asked)
    if source.warnings:
        out["warnings"] = list(source.warnings)
    return out


#: the places of this run's full read, kept in the run folder until apply stores them as the last good read
READ_PLACES = "read_places.json"


def _change_guard(rules: Rules, engine: Engine, folder: RunFolder, source, skipped: list, read: int,
                  plan: ChangeTables, full: bool) -> dict:
    """What the change guard judges (``usersync.plan.change_guard``): a full read against the last applied one,
    and the fields the plan changes or clears on many users. A full read's places go to the run folder."""
    drop = None
    if full:
        where = places([*source["account"], *(s.account for s in skipped)],
                       [*source["domain"], *(s.domain for s in skipped)])
        folder.write_json(READ_PLACES, {"count": read, "where": where})
        drop = read_drop(read, where, last_read(engine, rules.source.name), rules.safety, removals=plan.removals)
        if drop is not None:
            log.info("read: %s", drop.line())
    shifts = field_shifts(plan.updates, plan.owned, rules.field_limits(), rules.safety.guard_min_users)
    return shifts_to_json(drop, shifts)


def read_to_keep(folder: RunFolder) -> LastRead | None:
    """This run's full read, as apply stores it for the next run's change guard (None: not a full read)."""
    kept = folder.read_json(READ_PLACES)
    return LastRead(count=kept["count"], where=kept["where"]) if kept else None


def _detach_one(rules: Rules, existing, account: str, planned: ChangeTables) -> ChangeTables:
    """The plan of a single-account run asked to keep the account's user as a local user: that detach only —
    of the user the diff matched the account to (``planned.explained``)."""
    decided = planned.explained or {}
    hit = existing[existing["id"] == decided["user"]] if decided.get("user") is not None else existing.iloc[0:0]
    row = hit.iloc[0].to_dict() if len(hit) else None
    if decided.get("how") == "ambiguous":
        raise DetachError(f"account {account!r} fits several users (the same AD username in several domains); name it "
                          "as DOMAIN\\user or by its anchor; nothing was detached")
    if row is None:
        raise DetachError(f"no user of the users table holds account {account!r} (by anchor or by AD username + "
                          "Domain); nothing was detached")
    if row.get("source") != rules.source.name:
        raise DetachError(f"user {row['username']!r} is not owned by source {rules.source.name!r} (owner: "
                          f"{row.get('source') or 'none, a local user'}); nothing was detached")
    plan = detach_plan(rules.source.name, [row], f"kept as a local user: trigger parameter keep_as_local, account "
                       f"{account!r}", datetime.fromisoformat(planned.as_of) if planned.as_of else None)
    plan.read, plan.owned, plan.seen = planned.read, planned.owned, planned.seen
    return plan


def _anchors_read(folder: RunFolder, ref: TableRef, attributes: list[str], anchor: str | None) -> set[str]:
    """The anchors (objectGUIDs, Graph ids) of the changed entries just read: those are in scope, not removed."""
    column = next((a for a in attributes if anchor and a.lower() == anchor.lower()), None)
    if column is None or not ref.rows:
        return set()
    return {v for v in folder.read(ref).column(column).to_pylist() if v}


def last_state_per_entity(folder: RunFolder, ref: TableRef, column: str) -> TableRef:
    """The records file with one record per value of ``column``, the last one read (its latest state); the
    file is rewritten only when some entity came more than once."""
    table = folder.read(ref)
    name = next((n for n in table.schema.names if n.lower() == column.lower()), None)
    if name is None:
        return ref  # the rules do not read the entity's id: duplicates are then skipped by the diff, never merged
    keys = table.column(name)
    if keys.null_count or pc.count_distinct(keys).as_py() == table.num_rows:
        return ref  # every record its own entity (records without the column are never merged)
    last = pa.table({"key": keys, "row": pa.array(range(table.num_rows), pa.int64())}) \
        .group_by("key").aggregate([("row", "max")])
    kept = table.take(pc.take(last.column("row_max"), pc.sort_indices(last.column("row_max"))))
    log.info("%d record(s) read more than once (changed while being read): kept the last state of each of %d",
             table.num_rows - kept.num_rows, kept.num_rows)
    return folder.write(ref.file, kept, table.schema)


def _empty(info: SourceInfo, source: Source) -> EmptySource:
    where = ", ".join(f"{k} {v}" for k, v in (info.get("where") or {}).items() if k != "scope")
    how = f" reading in full ({source.fallback})" if source.fallback else ""
    error = EmptySource(f"{info.get('url')} returned no users{how}{f' ({where})' if where else ''}; refusing to treat "
                        f"that as 'everyone left' ({source.empty_hint})")
    if source.fallback:
        error.reading = f"full ({source.fallback})"
    return error


#: the keys of an extract's document its mapped partition carries on (``Extracted`` and ``Mapped`` share them)
CARRIED = ("removed", "scanned", "cursor", "reading", "warnings", "account")


def map_step(rules: Rules, extracted: Extracted, folder: RunFolder) -> Mapped:
    """Map one partition's records, a batch at a time, into ``mapped/`` and ``skipped/`` files of the run."""
    index, ref = extracted["partition"], TableRef.from_json(extracted["records"])
    fields = value_fields_of(rules)
    skipped: list = []
    progress = Progress(f"map {rules.source.name} partition {index + 1}", log, total=ref.rows)

    def mapped_batches():
        for batch in folder.batches(ref):
            mapped, bad = map_records(rules, records_of(batch))
            skipped.extend(bad)
            progress.advance(batch.num_rows)
            yield mapped_batch(mapped, fields)

    mapped_ref = folder.write(f"mapped/part-{index:03d}.parquet", mapped_batches(), mapped_schema(fields))
    if extracted.get("account"):  # one account: how each field's value came about
        record = next(records_of(folder.read(ref).to_batches()[0]), None) if ref.rows else None
        explanation.save(folder, "map", field_sections(rules, record) if record is not None else
                         {"fields": ["not mapped: the run does not sync this account (see scope)"]})
    skipped_ref = folder.write(f"skipped/part-{index:03d}.parquet", [skipped_batch(skipped)], SKIPPED_SCHEMA)
    progress.done()
    log.info("mapped %d of %d records (%d skipped)", mapped_ref.rows, ref.rows, len(skipped))
    out = Mapped(read=ref.rows, mapped=mapped_ref.to_json(), skipped=skipped_ref.to_json(),
                 delta=extracted.get("delta", False))
    for key in CARRIED:  # what the extract found about the read, carried on to the diff
        if key in extracted:
            out[key] = extracted[key]  # type: ignore[literal-required]
    return out


def diff_step(rules: Rules, parts: list[Mapped], engine: Engine, folder: RunFolder,
              as_of: datetime | None = None, keep_as_local: bool = False) -> PlanRef:
    """Columnar diff of all mapped partitions against the users table; the plan goes to ``plan/*.parquet``.

    ``as_of``: the run's time (its due time, when scheduled) — the day leavers leave, and what grace periods
    are counted against, so daily runs count whole days whatever each one's start-up took. ``keep_as_local``
    (single-account runs): the plan only detaches that account's user."""
    from usersync.plan.diff import diff_frames  # pandas: imported by the one step that uses it
    read = sum(p["read"] for p in parts)
    delta = any(p.get("delta") for p in parts)
    account = next((p["account"] for p in parts if p.get("account")), None)
    if not read and not delta and not account:  # extract refuses an empty source; this guards against record files swapped underneath
        raise EmptySource("the run's record files hold no users; refusing to treat that as 'everyone left'")
    removed: set[str] | None = set() if account else None  # one account: nobody else is gone
    if delta:
        refs = [TableRef.from_json(p["removed"]) for p in parts if p.get("removed")]
        if len(refs) != 1:
            raise EmptySource("a delta run without its list of removed accounts; refusing to guess who left")
        removed = set(folder.read(refs[0]).column("anchor").to_pylist())
    source = to_frame(pa.concat_tables([folder.read(TableRef.from_json(p["mapped"])) for p in parts]))
    skipped = [s for p in parts for s in skipped_of(folder.read(TableRef.from_json(p["skipped"])))]
    ensure_schema(engine)
    with engine.connect() as conn:  # before reading: a write after this point makes apply re-check claims
        seen = fingerprint(conn)
    existing = to_frame(users_table(engine))
    decisions = live_decisions(engine, rules.source.name)  # after the users: a later decision waits for the next run
    log.info("diff: %d source users against %d users in the table", len(source), len(existing))
    facts = explanation.load(folder)[1] if account else {}
    plan = diff_frames(rules, source, existing, skipped, read=read, removed=removed, as_of=as_of,
                       one_account=account is not None,
                       explain=(facts.get("key"), facts.get("domain"), facts.get("anchor"), bool(facts.get("found")))
                       if account else None, decisions=decisions)
    plan.seen = seen
    if account:
        decided = plan
        if keep_as_local:
            plan = _detach_one(rules, existing, account, plan)
        explanation.save(folder, "diff", match_sections(rules, existing, facts, decided) if read and not keep_as_local
                         else absent_sections(rules, existing, facts, decided), {"planned": plan.counts()})
    log.info("plan for %s: %s", rules.source.name, plan.counts())
    ref = plan.save(folder)
    if account:
        ref["account"] = account
    else:
        ref["guard"] = _change_guard(rules, engine, folder, source, skipped, read, plan, full=not delta)
    for key in ("cursor", "reading"):  # the delta link to store on apply; a read that changed its mind
        found = next((p[key] for p in parts if p.get(key)), None)
        if found:
            ref[key] = found
    warnings = [w for p in parts for w in p.get("warnings", [])]
    if warnings:
        ref["warnings"] = warnings
    return ref

