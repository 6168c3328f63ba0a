"""Four eyes, decided in the domain: who may answer an approval, whose overrides count, which answers are
refused (the Airflow side — assigned users, the 403, a second approver — is tested on the scheduler path in
tests/test_distributed.py)."""

from __future__ import annotations

import pytest

from usersync.plan.approval import HOST_RUN, Decision, may_override, own_answer, respondents
from usersync.plan.safety import check_removals
from usersync.rules.model import ApprovalsSpec, SafetySpec

TEAM = ApprovalsSpec(approvers=["admin", "alice"])
ALONE = ApprovalsSpec(approvers=["admin"], self_approval=True)
UNNAMED = ApprovalsSpec()


def test_the_person_who_triggered_is_never_among_those_who_may_answer():
    assert respondents(TEAM, "admin") == ["alice"]
    assert respondents(TEAM, "bob") == ["admin", "alice"]
    assert respondents(TEAM, None) == ["admin", "alice"]  # a scheduled run
    assert respondents(ALONE, "admin") == ["admin"]  # a single-admin installation says so
    assert respondents(UNNAMED, "admin") == []  # nobody named: Airflow lets anyone allowed answer…


def test_an_own_answer_is_refused_unless_the_rules_allow_it():
    assert "refused: 'admin' triggered this run" in own_answer(UNNAMED, "admin", "admin")  # …but not the triggerer
    assert own_answer(UNNAMED, "admin", "alice") is None
    assert own_answer(ALONE, "admin", "admin") is None
    assert own_answer(TEAM, None, "admin") is None and own_answer(TEAM, HOST_RUN, "admin") is None
    refused = Decision(approved=False, by="admin", at="2026-12-02T10:00:00+00:00",
                       refused=own_answer(UNNAMED, "admin", "admin"))
    assert refused.line().startswith("answered by admin at 2026-12-02T10:00:00+00:00, refused: 'admin' triggered")


@pytest.mark.parametrize("who, honoured", [("admin", True), ("alice", True), ("bob", False), (None, True),
                                           (HOST_RUN, True)])
def test_overrides_count_only_for_approvers_or_runs_nobody_signed_in_triggered(who, honoured):
    assert may_override(TEAM, who) is honoured
    assert may_override(UNNAMED, "bob") is False  # no approvers named: only the scheduler and the host


def test_an_override_names_who_set_it():
    verdict = check_removals(12, 20, SafetySpec(), allow_mass_delete=True, overridden_by="alice")
    assert "allow_mass_delete, set by alice" in verdict.message and not verdict.blocked
    host = check_removals(12, 20, SafetySpec(), allow_mass_delete=True, overridden_by=HOST_RUN)
    assert "set by the Airflow host (no signed-in user)" in host.message
