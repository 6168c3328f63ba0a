"""Run data: Parquet files with checksummed references, the change set as tables, the users table as Arrow."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import insert

from tests.support.helpers import existing_rows, plan, record, rules
from usersync.core.run_folder import FORMAT_VERSION, RunDataError, RunFolder, TableRef, prune_runs
from usersync.core.users_table import users
from usersync.plan.change_tables import ChangeTables, preview
from usersync.plan.frames import casefold
from usersync.run.report import change_lines
from usersync.store.users_read import users_table

SCHEMA = pa.schema([("name", pa.string()), ("n", pa.int64())])


def _write(folder: RunFolder, rows: int = 10_000) -> TableRef:
    batches = (pa.RecordBatch.from_pydict({"name": [f"u{i}" for i in range(s, s + 1000)], "n": list(range(s, s + 1000))},
                                          schema=SCHEMA) for s in range(0, rows, 1000))
    return folder.write("records/part-000.parquet", batches, SCHEMA)


def test_a_table_round_trips_and_its_reference_is_small(tmp_path):
    folder = RunFolder(tmp_path / "run")
    ref = _write(folder)
    assert ref.rows == 10_000 and ref.format == FORMAT_VERSION and len(ref.sha256) == 64
    assert len(json.dumps(ref.to_json())) < 300  # what XCom carries, whatever the row count
    table = folder.read(TableRef.from_json(json.loads(json.dumps(ref.to_json()))))
    assert table.column("n").to_pylist() == list(range(10_000))
    assert sum(b.num_rows for b in folder.batches(ref, batch_size=3000)) == 10_000
    assert folder.head(ref, 5).column("name").to_pylist() == ["u0", "u1", "u2", "u3", "u4"]


def test_a_damaged_file_is_an_error_naming_it(tmp_path):
    folder = RunFolder(tmp_path / "run")
    ref = _write(folder)
    path = tmp_path / "run" / ref.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunDataError, match=f"run file {path} is damaged"):
        folder.read(ref)


def test_a_missing_file_or_another_format_is_an_error_naming_it(tmp_path):
    folder = RunFolder(tmp_path / "run")
    ref = _write(folder)
    with pytest.raises(RunDataError, match="has format 99"):
        folder.read(TableRef(ref.file, ref.rows, ref.bytes, ref.sha256, format=99))
    (tmp_path / "run" / ref.file).unlink()
    with pytest.raises(RunDataError, match=f"run file {tmp_path / 'run' / ref.file} is missing"):
        folder.read(ref)


def test_run_folders_are_pruned_after_the_retention_by_their_manifest(tmp_path):
    dag = tmp_path / "user_sync__corp"
    old, new, starting = RunFolder(dag / "old"), RunFolder(dag / "new"), dag / "starting"
    old.write_manifest(source="corp")
    new.write_manifest(source="corp")
    starting.mkdir()  # no manifest yet: a run that is just starting is never removed
    manifest = json.loads((dag / "old" / "run.json").read_text())
    manifest["created"] = time.time() - 16 * 86400
    (dag / "old" / "run.json").write_text(json.dumps(manifest))
    assert prune_runs(dag, retention_days=15) == [str(dag / "old")]
    assert sorted(os.listdir(dag)) == ["new", "starting"]
    assert prune_runs(tmp_path / "absent", retention_days=15) == []


def test_the_change_set_round_trips_through_its_tables(tmp_path):
    r = rules()
    rows = existing_rows(r, [record(1), record(2)])
    p = plan(r, [record(1, givenName="J"), record(3), record(4, mail="bad")], rows)
    folder = RunFolder(tmp_path / "run")
    ref = ChangeTables.from_changeset(p).save(folder)
    assert ref["counts"] == p.counts() and len(json.dumps(ref)) < 2000
    assert ChangeTables.load(folder, ref).to_changeset() == p


def test_a_report_preview_keeps_the_true_counts_of_a_large_plan(tmp_path):
    r = rules()
    p = plan(r, [record(i) for i in range(50)])
    folder = RunFolder(tmp_path / "run")
    ref = ChangeTables.from_changeset(p).save(folder)
    shown = preview(folder, ref, lines=10)
    assert len(shown.inserts) == 10 and shown.counts()["inserted"] == 50 and shown.writes == 50
    lines = change_lines(shown, 10)
    assert len(lines) == 11 and lines[-1] == "… 40 more change(s) left out (report.max_change_lines = 10)"


def test_the_users_table_reads_as_arrow_keeping_nulls_blanks_and_flags(engine):
    with engine.begin() as conn:
        conn.execute(insert(users), [
            {"username": "a", "first_name": "", "last_name": None, "enabled": True, "voicemail_enabled": False,
             "department": 'Sales, "West"\nfloor 2'},
            {"username": "b", "first_name": "Bo", "last_name": None, "enabled": False, "voicemail_enabled": False,
             "department": None},
        ])
    table = users_table(engine).sort_by("username")
    assert table.column("username").to_pylist() == ["a", "b"]
    assert table.column("first_name").to_pylist() == ["", "Bo"]  # an empty text stays empty, not null
    assert table.column("last_name").to_pylist() == [None, None]
    assert table.column("enabled").to_pylist() == [True, False]
    assert table.column("department").to_pylist() == ['Sales, "West"\nfloor 2', None]
    assert table.column("id").type == pa.int64()


def test_casefold_matches_python_for_ascii_and_other_text():
    values = ["ABC", "Straße", "ÅSA", None, "İstanbul", "x_9"]
    folded = casefold(pd.Series(values, dtype=pd.ArrowDtype(pa.string()))).tolist()
    assert folded[:3] == ["abc", "strasse", "åsa"] and folded[3] is pd.NA
    assert folded[4:] == ["İstanbul".casefold(), "x_9"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../other-run/plan/deletes.parquet", "plan/../../x.parquet",
                                  "./plan/deletes.parquet", ".hidden/x.parquet", "plan//x.parquet", "",
                                  "file:///dev/zero", "plan\\..\\x"])
def test_a_reference_that_leaves_the_run_folder_is_refused_never_followed(tmp_path, name):
    folder = RunFolder(tmp_path / "runs" / "dag" / "run")
    (tmp_path / "runs" / "dag" / "other-run" / "plan").mkdir(parents=True)
    with pytest.raises(RunDataError, match="is not a plain path inside the run folder"):
        folder.read(TableRef(name, 1, 10, "0" * 64))


def test_a_file_of_another_size_than_recorded_is_refused_before_it_is_read(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    ref = _write(folder)
    (tmp_path / "run" / ref.file).write_bytes(b"x" * (ref.bytes + 1))
    opened = []
    monkeypatch.setattr(type(tmp_path), "open", lambda self, *a, **k: opened.append(self))
    with pytest.raises(RunDataError, match=f"{ref.bytes + 1} bytes, not the {ref.bytes} bytes"):
        folder.read(ref)
    assert opened == []  # refused on its size alone


def test_run_folders_encode_run_ids_injectively_and_never_as_dot_names():
    from usersync.core.run_folder import folder_name

    ids = ["manual__2026-12-02T18:42:19+00:00", "manual__2026-12-02T18_42_19_00_00", "manual__2026-12-02T18.42.19",
           ".", "..", ".hidden", "a/b", "a_2fb", "Zoë", "zo_c3_ab"]
    names = [folder_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(n and not n.startswith(".") and "/" not in n and set(n) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for n in names)
