"""The benchmark's smoke run (a small directory), so the benchmark code keeps working; no timing is asserted."""

from __future__ import annotations

import pytest

from bench.bench_dag import markdown, run_benchmark

pytestmark = pytest.mark.bench


def test_the_benchmark_runs_every_contestant_on_a_small_directory(tmp_path):
    bench = run_benchmark(2000, work=tmp_path)
    cases = {(r["path"], r["case"]): r for r in bench.rows}
    assert cases[("floor: ldapsearch (C, paged LDAPS) + COPY", "first import")]["written"] == 2000
    peer = "peer: django-python3-ldap ldap_sync_users, 4 fields"
    assert cases[(peer, "first import")]["written"] >= 2000  # PostgreSQL's count: it inserts, then saves again
    assert cases[(peer, "no-op")]["written"] == 2000  # and it saves every user again when nothing changed
    for path in ("ours, dag.test(), 12 attributes", "ours, scheduler path, 12 attributes"):
        assert cases[(path, "first import")]["written"] == 2000
        assert cases[(path, "no-op")]["written"] == 0
        assert cases[(path, "1% churn")]["written"] == 40  # 10 new + 20 modified + 10 removed, exactly
        assert all(cases[(path, c)]["xcom_bytes"] <= 64 * 1024 for c in ("first import", "no-op", "1% churn"))
        assert cases[(path, "first import")]["run_bytes"] > 0 and cases[(path, "first import")]["peak_rss_mb"] > 0
    # the scheduler path's breakdown walks the run's critical path: the six tasks of an ordinary run, in order
    for case in ("first import", "no-op", "1% churn"):
        hops = [hop.split(" ")[0] for hop in cases[("ours, scheduler path, 12 attributes", case)]["path_detail"].split(" → ")]
        assert list(dict.fromkeys(hops)) == ["check_source", "extract", "map", "diff", "apply", "report"]
    # the LocalExecutor's forkserver was started (preloaded) by the scheduler's warm-up, not by the first task
    (scheduler_log,) = tmp_path.glob("scheduler-*/scheduler.log")
    assert "usersync warm-up: forkserver started (it imports usersync_airflow.runtime.preload" in scheduler_log.read_text(errors="replace")
    text = markdown(2000, bench.rows, "python -m bench.bench_dag 2000")
    assert "| ours, scheduler path, 12 attributes | 1% churn |" in text and "faster than the peer cold" in text
    assert "Where the scheduler path's time goes" in text


def test_the_one_account_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_one_account import markdown as one_markdown
    from bench.bench_one_account import run_benchmark as run_one

    rows = {r["case"]: r for r in run_one(500, work=tmp_path)}
    assert rows["full run, first import"]["entries"] == 500
    one = rows["one account, changed"]
    assert one["entries"] == 1 and one["reader"] == "1 request(s), 1 entry" and one["written"]["updated"] == 1
    assert rows["reference: ldap3 bind + one search"]["entries"] == 1
    assert "| one account, changed |" in one_markdown(500, list(rows.values()), "python -m bench.bench_one_account 500")


def test_the_leavers_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_leavers import markdown as leavers_markdown
    from bench.bench_leavers import run_benchmark as run_leavers

    rows = {r["case"]: r for r in run_leavers(400, 20, work=tmp_path)}
    assert rows["first import"]["written"]["inserted"] == 400
    assert rows["20 leave: disabled"]["written"]["disabled"] == 20
    assert not any(rows["no-op, 20 pending deletion"]["written"].values())
    assert rows["30 days on: 20 deleted"]["written"]["deleted"] == 20
    assert "| 30 days on: 20 deleted |" in leavers_markdown(400, 20, list(rows.values()), "python -m bench.bench_leavers")


def test_the_user_log_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_user_log import markdown as log_markdown
    from bench.bench_user_log import run_benchmark as run_log

    rows, searches = run_log(300, 6000, work=tmp_path)
    imports = [r for r in rows if r["case"] == "first import"]
    assert [(r["logged"], r["written"]["inserted"], r["records"]) for r in imports] == [
        (False, 300, 0), (True, 300, 300)] * 2
    churn = [r for r in rows if r["case"] == "1 % churn"]
    assert [(r["written"]["updated"], r["records"]) for r in churn] == [(3, 0), (3, 3), (3, 0), (3, 3)]
    assert all(r["records"] == 0 and not any(r["written"].values()) for r in rows if r["case"] == "no-op")
    assert searches[0]["records"] > 5700 and all(s["found"] == searches[0]["per_user"] + 1 for s in searches)
    assert "| first import | yes |" in log_markdown(300, rows, searches, "python -m bench.bench_user_log 300")


def test_the_cases_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_cases import markdown as cases_markdown
    from bench.bench_cases import run_benchmark as run_cases

    rows = run_cases(200, work=tmp_path)  # each step checks its own outcome (links, open and closed cases)
    assert [r.get("written", {}).get("updated") for r in rows] == [200, 200, 0, None, 200]
    assert "| bulk confirm of 200 cases" in cases_markdown(200, rows, "python -m bench.bench_cases 200")


def test_the_change_guard_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_change_guard import markdown as guard_markdown
    from bench.bench_change_guard import run_benchmark as run_guard

    rows = run_guard(200, work=tmp_path)  # each run checks what it wrote
    assert [r.get("written", {}).get("updated", 0) for r in rows] == [0, 0, 0, 200, 200, 200]
    assert "| department cleared on 200 users, guard on, lifted" in guard_markdown(200, rows, "python -m x 200")


@pytest.mark.samba
def test_the_write_back_benchmark_runs_on_a_small_directory(tmp_path, samba_dc):
    from bench.bench_write_back import markdown as wb_markdown
    from bench.bench_write_back import run_benchmark as run_write_back

    result = run_write_back(30, work=tmp_path, dc=samba_dc)
    cases = {r["case"]: r for r in result["rows"]}
    assert cases["30 values written back"]["write_back"]["written"] == 30
    assert cases["next run: nothing to write"]["write_back"]["planned"] == 0
    assert result["floor"] > 0
    text = wb_markdown(30, result, "python -m bench.bench_write_back 30")
    assert "| 30 values written back |" in text and "| floor: `ldapmodify` (C), 30 one-value modifies" in text


def test_the_scim_benchmark_runs_on_a_small_directory(tmp_path):
    from bench.bench_scim import markdown as scim_markdown
    from bench.bench_scim import run_benchmark as run_scim

    result = run_scim(300, work=tmp_path)
    cases = {r["case"]: r for r in result["rows"]}
    assert cases["first import"]["written"]["inserted"] == 300
    assert not any((cases["no-op (read in full: SCIM has no change feed)"]["written"] or {}).values())
    assert result["http_users"] == 297 and result["http"] > 0  # 1 % of 300 deleted before the last run
    assert cases["3 deleted in the provider (1 %): each removal confirmed"]["written"]["deleted"] == 3
    text = scim_markdown(300, result, "python -m bench.bench_scim 300")
    assert "Waiting on HTTP is" in text and "Confirming 3 removals one by one" in text


def test_the_console_benchmark_builds_the_pages_it_times():
    """Five rules files: the sources page lists all five and the editor renders (the figures are the bench's)."""
    from bench.bench_console import render
    from bench.bench_console import run_benchmark as run_console

    figures = run_console(5)
    assert figures["largest"] == "corp_ad.yaml" and figures["first"] > 0 and figures["editor"] > 0
    assert "| sources page's HTML, 5 rows |" in render(5, figures)
