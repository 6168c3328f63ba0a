"""Write-back without a directory (fast lane): what the plan writes for whom, the guard's verdicts and routes,
and the write step's handling of outcomes, dry runs and a guard that stops the wave before any value."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tests.support.rules import ad_rules
from usersync.core.run_folder import RunFolder
from usersync.plan.guard import ASK, BLOCK, PROCEED, RunMode, route
from usersync.plan.safety import REMOVALS, check_removals
from usersync.plan.write_back import plan_writes
from usersync.plan.write_back_guard import WRITE_BACK, UnsafeWriteBack, check_wave, write_back_request
from usersync.rules import parse_rules
from usersync.run import write_back as wb
from usersync.sources.errors import SourceUnreachable
from usersync.sources.planned_write import Write, writes_table
from usersync.sources.record import SourceRecord
from usersync.sources.writer import CHANGED, FAILED, WRITTEN, DirectoryWriter, Outcome


def _rules(**write_back):
    data = ad_rules()
    data["fields"]["extension"] = "keep"
    data["fields"]["fax_number"] = "keep"
    data["write_back"] = {"attributes": {"ipPhone": "extension",
                                         "telephoneNumber": {"field": "extension", "format": "+39 02 {extension}"},
                                         "facsimileTelephoneNumber": {"field": "fax_number", "clear_when_empty": True},
                                         "pager": "fax_number"},
                          **write_back}
    return parse_rules(data)


def _user(i: int, **values) -> dict:
    return {"id": i, "username": f"u{i}", "ad_username": f"u{i}", "domain": "EXAMPLE", "external_id": f"{{g-{i}}}",
            "extension": None, "fax_number": None, **values}


def _record(i: int, **attributes) -> SourceRecord:
    return SourceRecord(f"CN=u{i},OU=Staff", {"sAMAccountName": f"u{i}", "objectGUID": f"{{g-{i}}}", **attributes})


def _target(record: SourceRecord) -> str:
    return record.account.upper()


def test_the_plan_writes_only_what_differs_for_users_this_source_owns_and_read():
    rules = _rules()
    owned = [_user(1, extension="101"), _user(2, extension="202", fax_number="900"), _user(3, extension="303"),
             _user(4, fax_number=None)]
    records = [
        _record(1, ipPhone="101", telephoneNumber="+39 02 101"),  # in line: nothing
        _record(2, ipPhone="200", telephoneNumber="+39 02 200", facsimileTelephoneNumber="900", pager="900"),
        _record(4, facsimileTelephoneNumber="555", pager="555"),  # empty fax: cleared (only where asked)
        _record(9, ipPhone="999"),  # not a user of this source: nothing of ours to write
        SourceRecord("CN=bad", {"sAMAccountName": "u3", "objectGUID": "{g-3}"}, problem="unreadable"),
    ]
    writes = plan_writes(rules, owned, records, _target)
    assert writes == [
        Write(2, "u2", "CN=u2,OU=Staff", "CN=U2,OU=STAFF", "ipPhone", "200", "202"),
        Write(2, "u2", "CN=u2,OU=Staff", "CN=U2,OU=STAFF", "telephoneNumber", "+39 02 200", "+39 02 202"),
        Write(4, "u4", "CN=u4,OU=Staff", "CN=U4,OU=STAFF", "facsimileTelephoneNumber", "555", None),
    ]


def test_a_renamed_account_is_found_by_its_anchor_and_one_without_anchor_by_its_key():
    rules = _rules()
    owned = [_user(1, extension="111", ad_username="old-name"), _user(2, extension="222", external_id=None)]
    records = [_record(1), SourceRecord("CN=u2", {"sAMAccountName": "U2"})]
    assert [(w.user_id, w.attribute, w.new) for w in plan_writes(rules, owned, records, _target)] == [
        (1, "ipPhone", "111"), (1, "telephoneNumber", "+39 02 111"), (2, "ipPhone", "222"),
        (2, "telephoneNumber", "+39 02 222")]


def test_rules_without_write_back_plan_nothing():
    assert plan_writes(parse_rules(ad_rules()), [_user(1, extension="1")], [_record(1)], _target) == []


def test_the_wave_guard_blocks_over_max_writes_unless_approved_or_overridden():
    assert not check_wave(500, 500).blocked
    blocked = check_wave(501, 500)
    assert blocked.blocked and "BLOCKED by the write-back guard: 501 value(s)" in blocked.message
    with pytest.raises(UnsafeWriteBack, match="501 value"):
        WRITE_BACK.enforce(blocked)
    approved = check_wave(501, 500, approved_by="alice")
    assert not approved.blocked and "approved by alice" in approved.message
    overridden = check_wave(501, 500, allow=True, overridden_by="alice")
    assert not overridden.blocked and "allow_mass_write_back, set by alice" in overridden.message
    WRITE_BACK.enforce(overridden)  # lifted: no error


def test_one_route_for_every_guard():
    rules = parse_rules(ad_rules())
    for verdict in (check_wave(9, 1), check_removals(9, 10, rules.safety)):
        assert verdict.blocked
        assert route(verdict, RunMode()) == ASK
        assert route(verdict, RunMode(approvals=False)) == BLOCK
        assert route(verdict, RunMode(dry_run=True)) == PROCEED
        assert route(verdict, RunMode(one_account=True)) == PROCEED
    assert route(check_wave(1, 9), RunMode()) == PROCEED
    assert (REMOVALS.override, WRITE_BACK.override) == ("allow_mass_delete", "allow_mass_write_back")


def test_the_approval_request_names_the_wave_its_limit_and_the_first_values():
    writes = [Write(i, f"u{i}", f"CN=u{i}", f"CN=u{i}", "ipPhone", None, str(i)) for i in range(30)]
    request = write_back_request("corp", check_wave(30, 5), writes[:20], where="the run folder", timeout_hours=24)
    assert request.subject == "usersync: approve writing 30 values back to corp?"
    assert "guard allows 5 (`write_back.max_writes`)" in request.body and "- `u19: ipPhone (empty) → '19'`" in request.body
    assert "… and 10 more" in request.body and "within 24 h" in request.body


class RecordingWriter(DirectoryWriter):
    """A writer whose directory is a dict: writes only where the value is still the one read (the contract)."""

    def __init__(self, directory: dict[tuple[str, str], str | None], lose_after: int | None = None):
        self.directory, self.lose_after, self.opened = directory, lose_after, 0

    @classmethod
    def from_rules(cls, spec, connection):  # pragma: no cover - not reached from these tests
        raise NotImplementedError

    def open(self) -> None:
        self.opened += 1

    def write(self, writes: Sequence[Write]) -> Iterator[Outcome]:
        for n, w in enumerate(writes):
            if self.lose_after is not None and n >= self.lose_after:
                raise SourceUnreachable("connection lost")
            if w.attribute == "pager":
                yield Outcome(FAILED, "insufficient access rights")
            elif self.directory.get((w.target, w.attribute)) != w.old:
                yield Outcome(CHANGED)
            else:
                self.directory[(w.target, w.attribute)] = w.new
                yield Outcome(WRITTEN)


def _planned(tmp_path, writes: list[Write]) -> tuple[RunFolder, dict]:
    folder = RunFolder(tmp_path)
    ref = folder.write(wb.PLAN_FILE, writes_table(writes), wb.WRITE_SCHEMA)
    return folder, {"plan": ref.to_json(), "writes": len(writes)}


WAVE = [Write(1, "u1", "CN=u1", "CN=u1", "ipPhone", "1", "101"),
        Write(2, "u2", "CN=u2", "CN=u2", "ipPhone", "2", "202"),
        Write(3, "u3", "CN=u3", "CN=u3", "pager", None, "303")]


def test_the_write_step_writes_only_unchanged_values_and_lists_problems_first(tmp_path):
    folder, plan = _planned(tmp_path, WAVE)
    directory = {("CN=u1", "ipPhone"): "1", ("CN=u2", "ipPhone"): "changed by hand"}
    result = wb.write_step(RecordingWriter(directory), folder, plan, dry_run=False)
    assert directory == {("CN=u1", "ipPhone"): "101", ("CN=u2", "ipPhone"): "changed by hand"}
    assert (result["written"], result["changed"], result["failed"]) == (1, 1, 1)
    assert result["lines"][0] == "! u2: ipPhone not written — "
    assert result["lines"][1] == "! u3: pager not written — insufficient access rights"
    assert result["lines"][2] == "↑ u1: ipPhone '1' → '101'"


def test_a_dry_run_writes_nothing_and_a_guard_stops_the_wave_before_any_value(tmp_path):
    folder, plan = _planned(tmp_path, WAVE)
    writer = RecordingWriter({("CN=u1", "ipPhone"): "1"})
    listed = wb.write_step(writer, folder, plan, dry_run=True)
    assert listed["planned"] == 3 and listed["lines"][0] == "~ would write u1: ipPhone '1' → '101'"
    assert writer.opened == 0

    def guard(loaded: int) -> None:
        WRITE_BACK.enforce(check_wave(loaded, 2))

    with pytest.raises(UnsafeWriteBack, match="3 value"):
        wb.write_step(writer, folder, plan, dry_run=False, guard=guard)
    assert writer.opened == 0 and writer.directory == {("CN=u1", "ipPhone"): "1"}


def test_a_connection_lost_midway_fails_the_rest_and_keeps_what_was_written(tmp_path):
    folder, plan = _planned(tmp_path, WAVE)
    directory = {("CN=u1", "ipPhone"): "1", ("CN=u2", "ipPhone"): "2"}
    result = wb.write_step(RecordingWriter(directory, lose_after=1), folder, plan, dry_run=False)
    assert directory[("CN=u1", "ipPhone")] == "101" and directory[("CN=u2", "ipPhone")] == "2"
    assert (result["written"], result["failed"]) == (1, 2)
    assert "not attempted: connection lost" in result["lines"][0]
