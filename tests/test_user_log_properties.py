"""The per-user log's property (hypothesis): for any sequence of runs and undos on a real SQLite users table,
replaying the log from empty gives the users the sync owns exactly as they are in the table.

Runs are drawn from a small pool of accounts (renames, value changes, clashes, leavers under 'delete' and
'disable', accounts coming back); undos name any earlier run or undo, including ones that cannot be undone.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, select

from tests.support.rules import ad_rules
from tests.support.small_runs import compute_diff
from usersync.core.run_folder import RunFolder
from usersync.core.users_table import user_events, users
from usersync.plan.change_tables import ChangeTables
from usersync.plan.mapping import map_records
from usersync.rules import parse_rules
from usersync.run.undo import UndoError, undo_step
from usersync.sources.record import SourceRecord
from usersync.store.apply import apply_tables, load_users
from usersync.store.history import all_events, normal, replay
from usersync.store.schema_version import ensure_schema
from usersync.store.user_log import RunStamp

pytestmark = pytest.mark.properties
CASES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def _rules(deletion: str):
    data = ad_rules()
    data["safety"] = {"deletion": deletion, "max_delete_percent": 100, "max_deletes": 1000}
    return parse_rules(data)


RULES = {"delete": _rules("delete"), "disable": _rules("disable")}
_state: dict = {}


def engine():
    if "engine" not in _state:
        _state["engine"] = create_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'users.db'}")
        ensure_schema(_state["engine"])
    return _state["engine"]


@st.composite
def account(draw, n: int):
    name = draw(st.sampled_from([f"user{n}", f"renamed{n}", "shared"]))
    attrs = {"sAMAccountName": name, "objectGUID": f"{{g-{n}}}",
             "givenName": draw(st.sampled_from(["Anna", "Bob", "Carla"])),
             "department": draw(st.sampled_from(["Sales", "R&D"])),
             "userAccountControl": "512"}
    number = draw(st.one_of(st.none(), st.sampled_from(["100", "101"])))
    if number:
        attrs["msRTCSIP-PrimaryUserAddress"] = f"sip:{number}@example.test"
    return SourceRecord(f"CN=a{n}", attrs)


@st.composite
def step(draw):
    if draw(st.integers(0, 3)) == 0:
        return ("undo", draw(st.integers(0, 20)))
    present = draw(st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True))
    return ("run", draw(st.sampled_from(["delete", "disable"])), [draw(account(n)) for n in sorted(present)])


def _owned_table():
    with engine().connect() as c:
        return {r.id: {k: normal(k, v) for k, v in r._mapping.items() if k not in ("id", "updated_at")}
                for r in c.execute(select(users)) if r.source}


@given(st.lists(step(), min_size=1, max_size=8))
@CASES
def test_replaying_the_log_from_empty_gives_the_synced_users_as_they_are(steps):
    eng = engine()
    with eng.begin() as c:
        c.execute(delete(users))
        c.execute(delete(user_events))
    done: list[str] = []
    folder = Path(tempfile.mkdtemp())
    for i, action in enumerate(steps):
        run_id, at = f"run-{i}", T0 + timedelta(days=i)
        if action[0] == "run":
            rules = RULES[action[1]]
            mapped, skipped = map_records(rules, action[2])
            diff = compute_diff(rules, mapped, load_users(eng), skipped, read=len(action[2]))
            tables = ChangeTables.from_changeset(diff)
            tables.as_of = at.isoformat()
            apply_tables(eng, tables, now=at, stamp=RunStamp(run_id, full_read=True))
        elif done:
            target = done[action[1] % len(done)]
            try:
                ref = undo_step("corp", target, eng, RunFolder(folder / run_id))
            except UndoError:
                continue  # a run that wrote nothing: nothing to undo, nothing written
            apply_tables(eng, ChangeTables.load(RunFolder(folder / run_id), ref), now=at,
                         stamp=RunStamp(run_id, note=f"undo of run {target}"))
        done.append(run_id)
        rebuilt = {id_: {c: normal(c, v) for c, v in row.items()} for id_, row in replay(all_events(eng)).items()}
        assert rebuilt == _owned_table(), f"after step {i}: {action}"
