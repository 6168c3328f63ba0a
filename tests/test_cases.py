"""Cases: numbers held aside and proposed matches — planned by the diff, kept between runs by apply, decided
by admins (``store.cases.decide``), applied whole by the next run. The users table is compared whole after
each run; the DAG, page and API paths are in ``test_cases_dag`` and ``test_browser``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from tests.support.helpers import changed_rows, local_user, record, rules
from tests.support.rules import ad_rules
from tests.support.small_runs import plan_tables
from usersync.core.users_table import cases, users
from usersync.plan.mapping import map_records
from usersync.rules import RulesError, parse_rules
from usersync.store.apply import apply_tables
from usersync.store.cases import decide, list_cases, live_decisions, unannounced
from usersync.store.user_log import RunStamp

T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


def _matching(*entries: dict) -> object:
    data = ad_rules()
    data["match"] = list(entries)
    return parse_rules(data)


def _plan(r, records, existing, decisions=None):
    mapped, skipped = map_records(r, records)
    return plan_tables(r, mapped, skipped, existing, read=len(records), decisions=decisions)


def _snapshot(engine) -> dict[int, dict]:
    with engine.connect() as c:
        return {r.id: {k: v for k, v in r._mapping.items() if k not in ("created_at", "updated_at")}
                for r in c.execute(select(users))}


def _run(engine, r, records, n: int, full: bool = True):
    """One whole run against ``engine``: the diff with the live decisions, then apply; returns the plan."""
    with engine.connect() as c:
        existing = [dict(row._mapping) for row in c.execute(select(users))]
    plan = _plan(r, records, existing, live_decisions(engine, r.source.name))
    apply_tables(engine, plan, now=T0 + timedelta(days=n), stamp=RunStamp(f"run-{n}", full_read=full))
    return plan


def _local(engine, *rows: dict) -> None:
    with engine.begin() as c:
        for row in rows:
            c.execute(insert(users).values({k: v for k, v in row.items() if k != "id"}))


def _cases(engine) -> list[dict]:
    return list_cases(engine, ["corp"], status="all")[0]


# --- rules ---------------------------------------------------------------------------------------------------

def test_on_clash_is_for_number_fields_and_match_needs_mapped_fields():
    data = ad_rules()
    data["fields"]["department"] = {**data["fields"]["department"], "on_clash": "hold"}
    with pytest.raises(RulesError, match=r"fields\.department: on_clash is for the unique number fields"):
        parse_rules(data)
    data = ad_rules()
    data["fields"]["email"] = "keep"
    data["match"] = [{"by": "email", "level": "link"}]
    with pytest.raises(RulesError, match=r"match\[0\]: by email compares email, which the rules do not map"):
        parse_rules(data)
    with pytest.raises(RulesError, match="transforms apply to the account's username only"):
        _matching({"by": "email", "transforms": ["local_part"]})
    assert rules().held_numbers() == {"extension", "alias_extension", "voicemail_number", "fax_number"}


# --- held numbers ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_held_number_opens_one_case_that_closes_itself_and_the_claimant_gets_it(engine):
    r = rules()
    _local(engine, local_user(0, "reception", extension="10002", language="de"))
    first = _snapshot(engine)
    _run(engine, r, [record(1), record(2)], 1)
    after = _snapshot(engine)
    new = {after[i]["username"]: after[i] for i in after.keys() - first.keys()}
    assert set(new) == {"user000001", "user000002"}
    assert new["user000002"]["extension"] is None and new["user000001"]["extension"] == "10001"
    assert {i: after[i] for i in first} == first  # the holder is untouched
    (case,) = _cases(engine)
    assert (case["kind"], case["status"], case["field"], case["value"], case["holder"], case["username"]) == \
        ("number", "open", "extension", "10002", "reception", "user000002")
    assert case["detail"]["holder_is"] == "a local user"
    assert [c["id"] for c in unannounced(engine, "corp")] == [case["id"]]

    _run(engine, r, [record(1), record(2)], 2)  # the same clash: the same case, seen twice
    assert _snapshot(engine) == after
    (again,) = _cases(engine)
    assert (again["id"], again["seen"], again["changed_at"]) == (case["id"], 2, None)

    with engine.begin() as c:  # the application frees the number
        c.execute(update(users).where(users.c.username == "reception").values(extension=None))
    freed = _snapshot(engine)
    _run(engine, r, [record(1), record(2)], 3)
    claimant = next(i for i, row in new.items() if i == "user000002")
    assert changed_rows(freed, _snapshot(engine)) == {new[claimant]["id"]: {"extension": (None, "10002")}}
    (closed,) = _cases(engine)
    assert closed["status"] == "closed" and closed["outcome"].startswith("resolved")
    assert closed["closed_run_id"] == "run-3"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_give_takes_the_number_from_the_holder_and_keep_silences_the_case(engine):
    r = rules()
    _local(engine, local_user(0, "reception", extension="10002"), local_user(0, "fax", fax_number="10001"))
    _run(engine, r, [record(1), record(2)], 1)
    by_field = {c["field"] + c["value"]: c for c in _cases(engine)}
    give, keep = by_field["extension10002"], by_field["extension10001"]
    assert decide(engine, [give["id"]], "give", "alice", ["corp"]) == {give["id"]: "ok"}
    assert decide(engine, [keep["id"]], "keep", "alice", ["corp"]) == {keep["id"]: "ok"}
    assert decide(engine, [keep["id"]], "confirm", "alice", ["corp"]) == {
        keep["id"]: "a number case is decided by give or keep, not 'confirm'"}
    assert decide(engine, [give["id"]], "give", "mallory", ["other"]) == {give["id"]: "no such case (or not yours to decide)"}
    before = _snapshot(engine)
    ids = {row["username"]: i for i, row in before.items()}
    _run(engine, r, [record(1), record(2)], 2)
    assert changed_rows(before, _snapshot(engine)) == {ids["reception"]: {"extension": ("10002", None)},
                                                      ids["user000002"]: {"extension": (None, "10002")}}
    states = {c["id"]: c for c in _cases(engine)}
    assert states[give["id"]]["status"] == "closed" and states[give["id"]]["outcome"].startswith("given")
    assert states[keep["id"]]["status"] == "kept" and states[keep["id"]]["seen"] == 2
    assert unannounced(engine, "corp") == []  # a kept case is never announced again


def test_skip_keeps_the_old_behaviour():
    data = ad_rules()
    data["fields"]["extension"]["on_clash"] = "skip"
    r = parse_rules(data)
    plan = _plan(r, [record(1), record(2)], [local_user(9, "reception", extension="10002")])
    assert plan.inserts.column("username").to_pylist() == ["user000001"] and plan.cases.num_rows == 0
    assert plan.skipped.to_pylist()[0]["code"] == "number_taken"


# --- match proposals -------------------------------------------------------------------------------------------

def test_a_sure_match_links_and_anything_less_is_a_case_listing_every_candidate():
    r = _matching({"by": "email", "level": "link"}, {"by": "name", "level": "propose"})
    existing = [
        local_user(1, "anna", email="Anna.Smith.1@example.test", first_name="Anna", last_name="Smith", language="de"),
        local_user(2, "marco.a", first_name="Marco", last_name="Smith"),
        local_user(3, "marco.b", first_name="Marco", last_name="Smith"),
        local_user(4, "giulia", first_name="Giulia", last_name="Smith"),  # proposed for two accounts
        {**local_user(5, "owned", first_name="Peter", last_name="Smith"), "ad_username": "x", "domain": "Y",
         "source": "other"},  # owned by a source: never a candidate
    ]
    twin = record(15, givenName="Giulia", sn="Smith")
    plan = _plan(r, [record(1), record(2), record(3), twin, record(4)], existing)
    assert plan.updates.to_pylist()[0]["id"] == 1 and plan.updates.num_rows == 1  # anna: linked by e-mail
    assert "new_ad_username" in plan.updates.schema.names and plan.updates["new_ad_username"][0].as_py() == "user000001"
    assert "language" not in plan.updates.to_pylist()[0]["changed"]  # what the application owns stays
    assert sorted(plan.inserts.column("username").to_pylist()) == ["user000004"]  # Peter: only an owned namesake
    proposals = {c["username"]: json.loads(c["detail"]) for c in plan.cases.to_pylist()}
    assert set(proposals) == {"user000002", "user000003", "user000015"}
    assert [c["id"] for c in proposals["user000002"]["candidates"]] == [2, 3]
    assert proposals["user000003"]["candidates"][0]["also"] == [twin.account]
    assert proposals["user000002"]["candidates"][0]["by"] == ["name: propose"]


def test_a_link_rule_with_two_candidates_or_a_shared_user_only_proposes():
    r = _matching({"by": "name", "level": "link"})
    existing = [local_user(2, "marco.a", first_name="Marco", last_name="Smith"),
                local_user(3, "marco.b", first_name="Marco", last_name="Smith")]
    plan = _plan(r, [record(2)], existing)
    assert plan.updates.num_rows == 0 and plan.inserts.num_rows == 0 and plan.cases.num_rows == 1


def test_username_with_a_transform_matches_the_local_form():
    data = ad_rules()
    data["fields"]["username"] = {"policy": "import", "attribute": "userPrincipalName"}
    data["match"] = [{"by": "username", "level": "link", "transforms": ["local_part"]}]
    r = parse_rules(data)
    plan = _plan(r, [record(1)], [local_user(7, "USER000001")])
    assert plan.updates.to_pylist()[0]["id"] == 7 and plan.updates["new_username"][0].as_py() == "user000001@example.test"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_confirm_links_keeping_the_row_and_reject_makes_a_new_user(engine):
    r = _matching({"by": "name", "level": "propose"})
    _local(engine, local_user(0, "marco", first_name="Marco", last_name="Smith", language="de", voicemail_enabled=True),
           local_user(0, "giulia", first_name="Giulia", last_name="Smith", language="it"))
    start = _snapshot(engine)
    ids = {row["username"]: i for i, row in start.items()}
    _run(engine, r, [record(2), record(3)], 1)
    assert _snapshot(engine) == start  # proposals wait: nothing inserted, nothing linked
    opened = {c["username"]: c for c in _cases(engine)}
    assert set(opened) == {"user000002", "user000003"} and {c["status"] for c in opened.values()} == {"open"}
    assert decide(engine, [opened["user000002"]["id"]], "confirm", "alice", ["corp"]) == {opened["user000002"]["id"]: "ok"}
    assert decide(engine, [opened["user000003"]["id"]], "reject", "alice", ["corp"]) == {opened["user000003"]["id"]: "ok"}
    _run(engine, r, [record(2), record(3)], 2)
    after = _snapshot(engine)
    linked = after[ids["marco"]]
    assert (linked["ad_username"], linked["domain"], linked["source"], linked["username"]) == \
        ("user000002", "EXAMPLE", "corp", "user000002")
    assert (linked["language"], linked["voicemail_enabled"]) == ("de", True)  # the application's values stay
    assert after[ids["giulia"]] == start[ids["giulia"]]  # rejected: the local user is left alone ...
    (new,) = [row for i, row in after.items() if i not in start]  # ... and the account is a new user
    assert new["ad_username"] == "user000003" and new["language"] == "en"
    assert {c["status"] for c in _cases(engine)} == {"closed"}
    assert {c["decided_by"] for c in _cases(engine)} == {"alice"}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_rejected_match_that_cannot_be_a_new_user_stays_skipped_as_rejected(engine):
    data = ad_rules()
    data["fields"]["username"] = {"policy": "import", "attribute": "givenName"}
    data["match"] = [{"by": "name", "level": "propose"}]
    r = parse_rules(data)
    _local(engine, local_user(0, "Marco", first_name="Marco", last_name="Smith"))
    _run(engine, r, [record(2)], 1)
    (case,) = _cases(engine)
    decide(engine, [case["id"]], "reject", "alice", ["corp"])
    plan = _run(engine, r, [record(2)], 2)
    (skip,) = plan.skipped.to_pylist()
    assert skip["code"] == "rejected_match" and skip["reason"].startswith("rejected match: username marco")
    (case,) = _cases(engine)
    assert case["status"] == "rejected" and case["closed_at"] is None


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_decision_taken_while_a_run_applies_is_applied_by_the_next_run_never_half(engine):
    """The run planned from 'confirm' (read by its diff); the admin then switched to 'reject' before apply: the run
    writes neither (no link, no insert), and the next run applies 'reject' whole."""
    r = _matching({"by": "name", "level": "propose"})
    _local(engine, local_user(0, "marco", first_name="Marco", last_name="Smith"))
    _run(engine, r, [record(2), record(1)], 1)
    (case,) = _cases(engine)
    decide(engine, [case["id"]], "confirm", "alice", ["corp"])
    with engine.connect() as c:
        existing = [dict(row._mapping) for row in c.execute(select(users))]
    plan = _plan(r, [record(2), record(1)], existing, live_decisions(engine, "corp"))  # the diff reads 'confirm'
    assert plan.updates.num_rows == 1
    decide(engine, [case["id"]], "reject", "bob", ["corp"])  # during the run
    before = _snapshot(engine)
    apply_tables(engine, plan, now=T0 + timedelta(days=2), stamp=RunStamp("run-2", full_read=True))
    assert _snapshot(engine) == before  # user000001 was already synced: nothing else to write
    assert [c.reason for c in plan.conflicts] == [f"case {case['id']}: decided again during this run; the next run "
                                                  "applies the new decision"]
    (now,) = _cases(engine)
    assert (now["status"], now["decision"], now["decided_by"]) == ("decided", "reject", "bob")
    _run(engine, r, [record(2), record(1)], 3)
    after = _snapshot(engine)
    (new,) = [row for i, row in after.items() if i not in before]
    assert new["ad_username"] == "user000002" and after.keys() - {new["id"]} == before.keys()
    assert {i: after[i] for i in before} == before
    assert _cases(engine)[0]["status"] == "closed"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_bulk_confirm_decides_only_cases_with_one_candidate(engine):
    r = _matching({"by": "name", "level": "propose"})
    _local(engine, local_user(0, "marco.a", first_name="Marco", last_name="Smith"),
           local_user(0, "marco.b", first_name="Marco", last_name="Smith"),
           local_user(0, "giulia", first_name="Giulia", last_name="Smith"))
    _run(engine, r, [record(2), record(3)], 1)
    found = {c["username"]: c["id"] for c in _cases(engine)}
    results = decide(engine, found.values(), "confirm", "alice", ["corp"])
    assert results == {found["user000002"]: "2 candidates: choose the user to link to", found["user000003"]: "ok"}
    with engine.connect() as c:
        local = c.execute(select(users.c.id).where(users.c.username == "marco.b")).scalar_one()
        owned = c.execute(select(users.c.id).where(users.c.username == "giulia")).scalar_one()
    assert decide(engine, [found["user000002"]], "confirm", "alice", ["corp"], user_id=local) == {found["user000002"]: "ok"}
    with engine.begin() as c:
        c.execute(update(users).where(users.c.id == owned).values(source="hr", ad_username="g", domain="HR"))
    assert decide(engine, [found["user000003"]], "confirm", "alice", ["corp"], user_id=owned) == {
        found["user000003"]: f"user {owned} is not a local user (it has an AD username, Domain or owner)"}
    with engine.connect() as c:
        assert c.execute(select(cases.c.decided_by).where(cases.c.id == found["user000002"])).scalar_one() == "alice"


def test_a_decision_taken_while_apply_holds_the_case_waits_for_it_and_never_half_applies(pg_url, monkeypatch):
    """PostgreSQL, two connections: apply has locked the decided case and is writing; a person decides again.
    The decision waits for apply's commit, then finds the case applied and closed, and changes nothing."""
    import threading

    from sqlalchemy import create_engine

    import usersync.store.apply as apply_module
    from usersync.store.schema_version import ensure_schema

    engine = create_engine(pg_url)
    ensure_schema(engine)
    r = _matching({"by": "name", "level": "propose"})
    _local(engine, local_user(0, "marco", first_name="Marco", last_name="Smith"))
    _run(engine, r, [record(2)], 1)
    (case,) = _cases(engine)
    decide(engine, [case["id"]], "confirm", "alice", ["corp"])
    with engine.connect() as c:
        existing = [dict(row._mapping) for row in c.execute(select(users))]
    plan = _plan(r, [record(2)], existing, live_decisions(engine, "corp"))

    locked, go = threading.Event(), threading.Event()
    real = apply_module.take_numbers

    def paused(*args, **kwargs):  # called right after apply locked the decided cases
        locked.set()
        assert go.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(apply_module, "take_numbers", paused)
    worker = threading.Thread(target=apply_tables, args=(engine, plan),
                              kwargs={"stamp": RunStamp("run-2", full_read=True)})
    worker.start()
    assert locked.wait(60)
    answer: dict = {}
    decider = threading.Thread(target=lambda: answer.update(decide(engine, [case["id"]], "reject", "bob", ["corp"])))
    decider.start()
    decider.join(1.5)
    assert decider.is_alive()  # waiting for apply's lock on the case
    go.set()
    worker.join(60)
    decider.join(60)
    assert answer == {case["id"]: "changed meanwhile (a run applied it, or someone decided it): reload"}
    (now,) = _cases(engine)
    assert (now["status"], now["decision"], now["decided_by"]) == ("closed", "confirm", "alice")
    linked = [row for row in _snapshot(engine).values() if row["username"] == "user000002"]
    assert len(linked) == 1 and linked[0]["ad_username"] == "user000002"  # the confirm, whole; no reject half
    engine.dispose()


def test_the_report_announces_new_cases_as_a_warning_and_lists_at_most_its_limit():
    from usersync.run.report import Cases, RunReport

    fresh = [{"id": i, "kind": "number", "field": "extension", "value": str(100 + i), "holder": "reception",
              "ad_username": f"u{i}", "domain": "CORP", "account": f"CN=u{i}",
              "detail": {"holder_is": "a local user"}} for i in range(5)]
    section = Cases(recorded={"cases_opened": 5}, planned={"numbers_held": 5}, live={"open": 5}, fresh=fresh,
                    link="https://airflow.example/usersync/cases?source=corp", limit=2)
    report = RunReport(source="corp", run_id="r1", dry_run=False, started=T0, ended=T0, sections=[section])
    text = report.render()
    assert report.mail_kind(False) == "warning" and "5 case(s) new or changed" in report.all_warnings()[0]
    assert "cases: 5 number(s) held aside, 0 match(es) waiting for a decision, 0 decision(s) applied" in text
    assert "cases: 5 opened" in text and "live cases: 5 open — decide them at https://airflow.example" in text
    assert "? case 0: extension 100 of CORP\\u0 is held aside: user 'reception' (a local user) has it" in text
    assert "? case 2:" not in text and "… 3 more on the cases page: https://airflow.example" in text
    quiet = RunReport(source="corp", run_id="r2", dry_run=False, started=T0, ended=T0,
                      sections=[Cases(live={"open": 5})])  # nothing new: no warning, so no mail
    assert quiet.all_warnings() == [] and quiet.mail_kind(False) is None
