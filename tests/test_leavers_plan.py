"""The leavers' lifecycle as the plan decides it, without a database (fast lane): the grace period's
arithmetic to the second, what each deletion policy does with a gone account, and protected users held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from tests.support.helpers import existing_rows, record, rules
from tests.support.rules import ad_rules
from usersync.plan import leavers
from usersync.plan.change_tables import ChangeTables
from usersync.plan.tables import rows_frame
from usersync.rules import parse_rules

NOW = datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
DAYS = 30


def _term(left_at: list[datetime | None], going: list[bool], already: list[bool]) -> leavers.GraceTerm:
    series = pd.Series(left_at, dtype="object").astype(pd.ArrowDtype(leavers.TIMESTAMP))
    return leavers.grace(series, pd.Series(going), pd.Series(already), NOW, DAYS)


def test_a_leaver_is_deleted_on_the_day_its_grace_ends_not_a_second_before():
    due = NOW - timedelta(days=DAYS)
    term = _term([due, due + timedelta(seconds=1), due - timedelta(days=400)], [True] * 3, [True] * 3)
    assert term.expired.tolist() == [True, False, True]
    assert term.waiting.tolist() == [False, True, False]
    assert term.until.iloc[1] == pd.Timestamp(due + timedelta(seconds=1) + timedelta(days=DAYS))


def test_a_leaver_of_this_run_starts_its_days_now_and_a_missing_left_at_counts_as_now():
    term = _term([None, None], [True, True], [False, True])
    assert term.expired.tolist() == [False, False]  # nobody is deleted for days not seen to be waited
    assert term.waiting.tolist() == [True, True]
    assert term.since.tolist() == [pd.Timestamp(NOW)] * 2
    assert term.until.tolist() == [pd.Timestamp(NOW + timedelta(days=DAYS))] * 2


def test_an_account_still_there_is_neither_expired_nor_waiting():
    term = _term([NOW - timedelta(days=90)], [False], [True])
    assert term.expired.tolist() == [False] and term.waiting.tolist() == [False]


def _rules(deletion: str, grace: int | None = DAYS, protect: list | None = None):
    data = ad_rules()
    data["safety"] = {"deletion": deletion, **({"delete_after_days": grace} if grace is not None else {})}
    if protect:
        data["protect"] = protect
    return parse_rules(data)


def _table(disabled_since: dict[int, datetime | None]) -> pd.DataFrame:
    """Five users of source corp; those in ``disabled_since`` were disabled by sync then (None: left_at lost)."""
    rows = existing_rows(rules(), [record(i) for i in range(1, 6)])
    for row in rows:
        if row["id"] in disabled_since:
            row.update(disabled_by_sync=True, enabled=False, left_at=disabled_since[row["id"]])
    rows[4]["department"] = "Board"
    return rows_frame(rows)


def _plan(r, existing: pd.DataFrame, gone_ids: set[int]) -> tuple[ChangeTables, set]:
    plan = ChangeTables(source="corp")
    gone = existing["id"].isin(sorted(gone_ids)).astype(bool)
    return plan, leavers.plan_leavers(r, existing, gone, NOW, plan)


def test_disable_with_grace_disables_new_leavers_deletes_expired_and_lists_the_waiting():
    r = _rules("disable", protect=[{"field": "department", "in": ["Board"]}])
    existing = _table({2: NOW - timedelta(days=DAYS), 3: NOW - timedelta(days=DAYS - 1), 4: None})
    plan, deleted = _plan(r, existing, {1, 2, 3, 4, 5})
    assert plan.disables.column("id").to_pylist() == [1]
    assert deleted == {2} and plan.deletes.column("id").to_pylist() == [2]
    pending = {row["id"]: row["until"] for row in plan.pending.to_pylist()}
    assert pending == {1: NOW + timedelta(days=DAYS), 3: NOW + timedelta(days=1), 4: NOW + timedelta(days=DAYS)}
    assert plan.kept == 2  # 3 and 4: disabled earlier, still waiting
    assert plan.holds.column("id").to_pylist() == [5] and plan.held == 1  # protected: held, not disabled
    assert any("1 user(s) deleted: gone 30 day(s)" in note for note in plan.notes)


def test_disable_without_grace_never_deletes_and_delete_deletes_at_once():
    existing = _table({2: NOW - timedelta(days=900)})
    plan, deleted = _plan(_rules("disable", grace=None), existing, {1, 2})
    assert deleted == set() and plan.disables.column("id").to_pylist() == [1] and plan.kept == 1
    plan, deleted = _plan(_rules("delete", grace=None), existing, {1, 2})
    assert deleted == {1, 2} and plan.disables.num_rows == 0 and plan.pending.num_rows == 0


def test_keep_writes_nothing_and_counts_the_gone():
    plan, deleted = _plan(_rules("keep", grace=None), _table({}), {1, 3})
    assert deleted == set() and plan.writes == 0 and plan.kept == 2 and plan.holds.num_rows == 0
