"""The mass-delete guard's arithmetic: count and percentage limits, and the one-run override."""

from __future__ import annotations

import pytest

from tests.support.small_runs import check_plan
from usersync.plan.changes import ChangeSet, Delete, Disable
from usersync.rules.model import SafetySpec


def _plan(deletes: int, disables: int = 0, owned: int = 100) -> ChangeSet:
    return ChangeSet(
        source="s",
        owned=owned,
        deletes=[Delete(i, f"u{i}", f"u{i}", "D") for i in range(deletes)],
        disables=[Disable(1000 + i, f"d{i}", f"d{i}", "D") for i in range(disables)],
    )


@pytest.mark.parametrize(
    ("deletes", "disables", "owned", "limits", "blocked"),
    [
        (20, 0, 100, SafetySpec(), False),  # exactly 20% passes
        (21, 0, 100, SafetySpec(), True),  # over 20%
        (10, 11, 100, SafetySpec(), True),  # disables count as removals
        (501, 0, 10_000, SafetySpec(), True),  # over 500 even though only 5%
        (500, 0, 10_000, SafetySpec(), False),
        (3, 0, 10, SafetySpec(max_delete_percent=50), False),
        (1, 0, 1, SafetySpec(max_delete_percent=100), False),
        (0, 0, 0, SafetySpec(), False),
    ],
)
def test_limits(deletes, disables, owned, limits, blocked):
    verdict = check_plan(_plan(deletes, disables, owned), limits)
    assert verdict.blocked is blocked
    assert verdict.removals == deletes + disables


def test_blocked_message_says_planned_limit_and_how_to_let_it_through():
    verdict = check_plan(_plan(60, owned=100), SafetySpec())
    assert verdict.blocked
    assert "60 of the 100 users" in verdict.message and "60.0%" in verdict.message
    assert "limits: 500 users, 20%" in verdict.message and "allow_mass_delete" in verdict.message


def test_override_lets_one_run_through_and_says_so():
    verdict = check_plan(_plan(60, owned=100), SafetySpec(), allow_mass_delete=True)
    assert not verdict.blocked and verdict.allowed_by_override
    assert "overridden" in verdict.message
