"""CSV import: encodings, separators, quoting, header checks, bad rows with line numbers, never deletes."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import create_engine, select

from tests.support.repo import REPO
from tests.support.small_runs import compute_diff, plan_tables
from usersync.core.users_table import users
from usersync.plan.mapping import map_records
from usersync.rules import RulesError, parse_rules
from usersync.sources import SourceQueryError
from usersync.sources.csvfile.reader import CsvSource, resolve_import
from usersync.store.schema_version import ensure_schema

RULES = yaml.safe_load((REPO / "include" / "rules" / "staff_csv.yaml").read_text())
HEADER = "ad_username,domain,username,first_name,last_name,email,department,extension,mobile,language"


def _rules(**changes):
    data = yaml.safe_load(yaml.safe_dump(RULES))
    data.update(changes)
    return parse_rules(data)


def _read(path, rules=None):
    rules = rules or _rules()
    src = CsvSource(rules.source, path, rules.source_attributes())
    return list(src.records(src.check()))


def test_the_shipped_template_imports(tmp_path):
    records = _read(REPO / "include" / "imports" / "users_template.csv")
    assert [r.get("ad_username") for r in records] == ["john.smith", "anna.rossi"]
    assert records[1].get("department") == "Research, Lab 2"  # quoted comma
    mapped, skipped = map_records(_rules(), records)
    assert skipped == [] and mapped[0].domain == "CORP"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("sep", [",", ";"])
def test_utf8_with_or_without_bom_comma_or_semicolon_and_quotes(tmp_path, bom, sep):
    rows = [HEADER.replace(",", sep),
            sep.join(["jürgen", "CORP", "jürgen", "Jürgen", "Müller", "j@corp.example", '"Ops; Night, shift"', "1005", "", "de"]),
            sep.join(["li", "CORP", "li", "Li", "Wei", "li@corp.example", '"multi\nline"', "1006", "", ""])]
    path = tmp_path / "staff.csv"
    path.write_bytes(bom + "\n".join(rows).encode("utf-8") + b"\n")
    records = _read(path)
    assert records[0].get("ad_username") == "jürgen"  # no BOM glued to the first header
    assert records[0].get("department") == "Ops; Night, shift"
    assert records[1].get("department") == "multi\nline" and records[1].account == "staff.csv line 4"


def test_missing_required_column_stops_with_a_clear_message(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("ad_username,domain,username\nx,CORP,x\n")
    with pytest.raises(SourceQueryError, match="short.csv: the header lacks the column.*first_name.*header: ad_username"):
        _read(path)


def test_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\nmüller,CORP,m,M,M,m@x.test,,1,,\n").encode("latin-1"))
    with pytest.raises(SourceQueryError, match="not UTF-8"):
        _read(path)


def test_bad_rows_are_skipped_with_line_numbers_and_good_rows_imported(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join([
        HEADER,
        "a1,CORP,a1,A,One,a1@corp.example,IT,1001,,en",     # line 2 ok
        ",CORP,nokey,N,K,nk@corp.example,IT,1002,,en",        # line 3 missing key
        "a3,CORP,a3,A,Three,not-an-email,IT,1003,,en",       # line 4 bad e-mail
        "a1,CORP,a1bis,A,Dup,dup@corp.example,IT,1004,,en",   # line 5 duplicate key of line 2
        "a6,CORP,a6,A,Six,a6@corp.example,IT,1001,,en",       # line 6 number clash with line 2... (a1 is a dup now)
        "a7,CORP,a7,A,Seven,a7@corp.example,IT,1007,,en,extra",  # line 7 too many fields
        "a8,CORP,a8,A,Eight,a8@corp.example,IT,1008,,en",     # line 8 ok
        "a9,CORP,a9,A,Nine,a9@corp.example,IT,1008,,en",      # line 9 number clash with line 8
    ]) + "\n")
    rules = _rules()
    mapped, skipped = map_records(rules, _read(path, rules))
    plan = compute_diff(rules, mapped, [], skipped)
    assert {i.row["username"]: i.row["extension"] for i in plan.inserts} == {"a6": "1001", "a8": "1008", "a9": None}
    reasons = {s.account: s.reason for s in plan.skipped}
    assert "no ad_username" in reasons["mixed.csv line 3"]
    assert "e-mail" in reasons["mixed.csv line 4"]
    assert "duplicate key" in reasons["mixed.csv line 2"] and "duplicate key" in reasons["mixed.csv line 5"]
    assert "has 11 fields, the header has 10" in reasons["mixed.csv line 7"]
    assert "mixed.csv line 9" not in reasons  # inserted without the number line 8 has: a case says so
    ((account, field, value, holder),) = [(c["account"], c["field"], c["value"], c["holder"])
                                          for c in plan_tables(rules, mapped, skipped).cases.to_pylist()]
    assert (account, field, value, holder) == ("mixed.csv line 9", "extension", "1008", "a8")


def test_csv_rules_never_delete_and_run_on_demand():
    assert _rules().safety.deletion == "keep"
    with pytest.raises(RulesError, match="never removes users"):
        _rules(safety={"deletion": "delete"})
    with pytest.raises(RulesError, match="on demand"):
        _rules(schedule={"auto": True})


def test_files_outside_the_imports_folder_are_refused(tmp_path):
    (tmp_path / "imports").mkdir()
    (tmp_path / "secret.csv").write_text(HEADER)
    with pytest.raises(SourceQueryError, match="not inside the imports folder"):
        resolve_import(tmp_path / "imports", "../secret.csv")
    with pytest.raises(SourceQueryError, match="no file .nope.csv."):
        resolve_import(tmp_path / "imports", "nope.csv")


@pytest.mark.airflow
def test_csv_import_end_to_end_inserts_updates_and_never_deletes(airflow_env, tmp_path, pg_url, monkeypatch):
    imports = tmp_path / "imports"
    imports.mkdir()
    monkeypatch.setenv("USERSYNC_IMPORTS_DIR", str(imports))
    (imports / "first.csv").write_text(
        HEADER + "\na1,CORP,a1,A,One,a1@corp.example,IT,1001,,en\na2,CORP,a2,A,Two,a2@corp.example,IT,1002,,en\n"
        "bad,CORP,bad,B,Ad,broken,IT,1003,,en\n")
    (imports / "second.csv").write_text(HEADER.replace(",", ";") + "\na1;CORP;a1;A;Uno;a1@corp.example;IT;1001;;en\n")
    airflow_env.users_db(pg_url)
    airflow_env.rules(dict(RULES, run={"retries": 0}))

    dr = airflow_env.run("user_import__staff_csv", {"file": "first.csv"})
    assert dr.state == "success"
    report = dr.get_task_instance("report").xcom_pull(task_ids="report")
    assert "! first.csv line 4: email: not an e-mail address: 'broken'" in report
    dr = airflow_env.run("user_import__staff_csv", {"file": "second.csv"})
    assert dr.state == "success"
    engine = create_engine(pg_url)
    ensure_schema(engine)
    with engine.connect() as c:
        rows = {r.username: r for r in c.execute(select(users))}
    engine.dispose()
    assert set(rows) == {"a1", "a2"}  # a2 is not in second.csv: kept, never deleted
    assert rows["a1"].last_name == "Uno"

    dr = airflow_env.run("user_import__staff_csv", {"file": "missing.csv"})
    assert dr.state == "failed"
