"""Builders for unit tests of mapping, diff and apply."""

from __future__ import annotations

from typing import Any

from devtools.ad_data import ad_user, user_dn
from tests.support.rules import ad_rules
from tests.support.small_runs import compute_diff
from usersync.plan.mapping import map_records
from usersync.rules import Rules, parse_rules
from usersync.sources.record import SourceRecord


def rules(**fields) -> Rules:
    data = ad_rules()
    data["fields"].update(fields)
    return parse_rules(data)


def record(i: int, **overrides) -> SourceRecord:
    attrs = {k: v for k, v in ad_user(i).items() if k != "objectGUID"}
    for k, v in overrides.items():
        if v is None:
            attrs.pop(k, None)
        else:
            attrs[k] = v
    return SourceRecord(user_dn(ad_user(i)), attrs)


def plan(r: Rules, records, existing=()):
    mapped, skipped = map_records(r, records)
    return compute_diff(r, mapped, list(existing), skipped, read=len(records))


def existing_rows(r: Rules, records, start_id: int = 1, **overrides) -> list[dict[str, Any]]:
    """Rows as the table would hold them after inserting ``records`` with rules ``r`` (the diff's insert rows)."""
    mapped, skipped = map_records(r, records)
    assert not skipped, skipped
    inserted = {(i.row["ad_username"], i.row["domain"]): i.row for i in compute_diff(r, mapped, []).inserts}
    return [{"id": start_id + n, **inserted[(m.ad_username, m.domain)], **overrides} for n, m in enumerate(mapped)]


def local_user(id_: int, username: str, **values) -> dict[str, Any]:
    row = {"id": id_, "username": username, "ad_username": None, "domain": None, "source": None}
    row.update(values)
    return row


def table_rows(url: str) -> dict[str, dict[str, Any]]:
    """The users table at ``url`` by AD username (created empty if a run failed before creating it)."""
    return {row["ad_username"]: row for row in all_rows(url).values()}


def planned(dag_run) -> dict[str, Any]:
    """The change set a DAG run's diff wrote to its run folder (XCom holds only the reference), as JSON."""
    from usersync.plan.change_tables import ChangeTables
    from usersync_airflow.dag.run_storage import run_folder

    ref = dag_run.get_task_instance("diff").xcom_pull(task_ids="diff", key="usersync_plan")
    return ChangeTables.load(run_folder(dag_run.dag_id, dag_run.run_id), ref).to_changeset().to_json()


def sync_once(rules: Rules, source, engine, folder_path, full_sync: bool = False, dry_run: bool = False) -> dict:
    """One run of the DAG's steps in this process (check → extract ×N → map ×N → diff + guard → apply), for
    tests that need many runs (the equivalence of delta and full reads); the DAG itself is tested apart."""
    from usersync.core.run_folder import RunFolder
    from usersync.plan.change_tables import ChangeTables
    from usersync.plan.read_plan import Watermark
    from usersync.plan.safety import check_removals
    from usersync.run import pipeline
    from usersync.store.apply import apply_tables

    folder = RunFolder(folder_path)
    info = pipeline.check_step(source, rules, engine, full_sync=full_sync)
    count = rules.source.partition_count
    extracted = [pipeline.extract_step(source, info, rules.source_attributes(), folder, i, count)
                 for i in pipeline.partitions(rules, info)]
    parts = [pipeline.map_step(rules, e, folder) for e in extracted]
    ref = pipeline.diff_step(rules, parts, engine, folder)
    verdict = check_removals(ref["removals"], ref["owned"], rules.safety)
    plan = ChangeTables.load(folder, ref)
    written = {}
    if not dry_run and not verdict.blocked:
        read = info.get("read")
        written = apply_tables(engine, plan, watermark=Watermark.from_json(read["watermark"]) if read else None)
    return {"info": info, "plan": plan, "written": written, "verdict": verdict,
            "entries": sum(p["read"] for p in parts) + sum(e.get("scanned", 0) for e in extracted)}


def users_snapshot(engine) -> dict:
    """The users table by id, without the write timestamps (what two ways of syncing must agree on)."""
    from sqlalchemy import select

    from usersync.core.users_table import users

    with engine.connect() as conn:
        return {r.id: {k: v for k, v in r._mapping.items() if k not in ("created_at", "updated_at")}
                for r in conn.execute(select(users))}


def all_rows(url: str) -> dict[int, dict[str, Any]]:
    """The whole users table at ``url`` by row id (local users included): for comparing it whole (created
    empty when no run made it yet)."""
    from sqlalchemy import create_engine, select

    from usersync.core.users_table import users
    from usersync.store.schema_version import ensure_schema

    eng = create_engine(url)
    ensure_schema(eng)
    with eng.connect() as c:
        rows = {r.id: dict(r._mapping) for r in c.execute(select(users))}
    eng.dispose()
    return rows


def changed_rows(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> dict[int, dict[str, tuple]]:
    """Per row id that differs between two whole-table snapshots: column → (before, after); a row added or
    removed shows as every column against None."""
    out: dict[int, dict[str, tuple]] = {}
    for row_id in before.keys() | after.keys():
        old, new = before.get(row_id, {}), after.get(row_id, {})
        diff = {c: (old.get(c), new.get(c)) for c in old.keys() | new.keys()
                if old.get(c) != new.get(c)}
        if diff:
            out[row_id] = diff
    return out


def report_of(dag_run) -> str:
    """The report a DAG run's report task wrote (its XCom return value)."""
    return dag_run.get_task_instance("report").xcom_pull(task_ids="report")
