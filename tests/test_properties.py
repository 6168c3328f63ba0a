"""Properties of diff + apply (hypothesis, 500 generated cases each) on a real SQLite users table.

Sources and starting tables are drawn from small pools of names and numbers, so clashes, case variants,
foreign and local users, stale values and duplicates are common rather than rare.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, insert, select

from tests.support.helpers import rules
from tests.support.small_runs import compute_diff
from usersync.core.users_table import users
from usersync.plan.change_tables import ChangeTables
from usersync.plan.mapping import map_records
from usersync.rules.fields import NUMBER_FIELDS
from usersync.sources.record import SourceRecord
from usersync.store.apply import apply_tables
from usersync.store.schema_version import ensure_schema

pytestmark = pytest.mark.properties
CASES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = rules()
IMPORTED = ("username", "first_name", "last_name", "email", "department", "extension", "enabled")
_engine = None


def engine():
    global _engine
    if _engine is None:
        _engine = create_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'users.db'}")
        ensure_schema(_engine)
    return _engine


names = st.sampled_from(["anna", "Anna", "bob", "carla", "dino", "eva", "fritz", "gina"])
numbers = st.one_of(st.none(), st.sampled_from(["100", "101", "102", "103"]))
texts = st.one_of(st.none(), st.sampled_from(["Sales", "Support", "R&D", "x" * 10]))


@st.composite
def account(draw, index: int | None = None):
    name = draw(names)
    attrs = {
        "sAMAccountName": name,
        "objectGUID": draw(st.sampled_from([f"{{g-{n}}}" for n in range(10)])),
        "givenName": draw(texts), "sn": draw(texts), "department": draw(texts),
        "mail": draw(st.one_of(st.none(), st.just(f"{name}@example.test"), st.just("not-an-address"))),
        "userAccountControl": draw(st.sampled_from(["512", "514"])),
    }
    number = draw(numbers)
    if number:
        attrs["msRTCSIP-PrimaryUserAddress"] = f"sip:{number}@example.test"
    return SourceRecord(f"CN={name}", {k: v for k, v in attrs.items() if v is not None})


@st.composite
def table_row(draw):
    kind = draw(st.sampled_from(["local", "ours", "foreign"]))
    name = draw(names)
    row = {"username": draw(st.sampled_from([name, name.upper(), f"{name}.local"])), "first_name": draw(texts),
           "language": draw(st.sampled_from(["de", "it", None])), "personal_address": draw(texts),
           **{c: draw(numbers) for c in NUMBER_FIELDS}}
    if kind != "local":
        row.update(ad_username=name, domain="EXAMPLE", source="corp" if kind == "ours" else "other",
                   external_id=draw(st.one_of(st.none(), st.sampled_from([f"{{g-{n}}}" for n in range(10)]))))
    return row


def _load(rows: list[dict]) -> None:
    """A starting table: the drawn rows that keep usernames, sync keys and numbers unique (as a real one is)."""
    taken: set[str] = set()
    kept = []
    for row in rows:
        claims = {"u:" + row["username"].lower(), *("n:" + row[c] for c in NUMBER_FIELDS if row.get(c))}
        if row.get("ad_username"):
            claims.add("k:" + row["ad_username"].lower())
        numbers = [row[c] for c in NUMBER_FIELDS if row.get(c)]
        if claims & taken or len(numbers) != len(set(numbers)):
            continue
        taken |= claims
        kept.append(row)
    with engine().begin() as conn:
        conn.execute(delete(users))
        for row in kept:
            conn.execute(insert(users), [row])


def _table() -> dict[int, dict]:
    with engine().connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(users))}


def _sync(records: list[SourceRecord], removed: set[str] | None = None):
    mapped, skipped = map_records(RULES, records)
    plan = compute_diff(RULES, mapped, list(_table().values()), skipped, read=len(records), removed=removed)
    tables = ChangeTables.from_changeset(plan)
    apply_tables(engine(), tables)
    assert tables.conflicts == []  # nobody else writes here
    return mapped, plan


def _unique(table: dict[int, dict]) -> None:
    usernames = [r["username"].lower() for r in table.values()]
    assert len(usernames) == len(set(usernames))
    held = [n for r in table.values() for n in {r[c] for c in NUMBER_FIELDS if r[c]}]  # no two users share one
    assert len(held) == len(set(held)), held


@CASES
@given(st.lists(account(), max_size=8), st.lists(table_row(), max_size=8))
def test_after_apply_synced_fields_match_the_source_and_nothing_else_moved(records, start):
    _load(start)
    before = _table()
    mapped, plan = _sync(records)
    after = _table()
    _unique(after)
    skipped = {(s.ad_username or "").casefold() for s in plan.skipped}
    inserted = {i.row["ad_username"].casefold() for i in plan.inserts}
    by_key = {(r["ad_username"] or "").casefold(): r for r in after.values() if r["source"] == "corp"}
    for user in mapped:
        if user.ad_username.casefold() in skipped:
            continue
        row = by_key[user.ad_username.casefold()]
        for field in IMPORTED:  # every imported field equals the mapped source value ...
            wanted = user.values.get(field)
            if field in NUMBER_FIELDS and row[field] != wanted:  # ... but a number another user holds is held aside
                holders = [r for r in after.values() if r["id"] != row["id"] and wanted in {r[c] for c in NUMBER_FIELDS}]
                assert holders, (field, row, user)
                kept = before[row["id"]][field] if row["id"] in before else None  # as it was; empty on insert
                assert row[field] == kept, (field, row, user)
                continue
            assert row[field] == wanted, (field, row, user)
        if user.ad_username.casefold() in inserted:  # on_insert only on new users
            assert row["language"] == "en" and row["personal_address"] is None
        else:  # an existing user: on_insert and keep fields never written
            assert row["language"] == before[row["id"]]["language"]
            assert row["personal_address"] == before[row["id"]]["personal_address"]
    for id_, row in before.items():  # local users and other sources' users are untouched
        if row["source"] != "corp":
            assert after.get(id_) == row


@CASES
@given(st.lists(account(), max_size=8), st.lists(table_row(), max_size=8))
def test_a_second_run_on_unchanged_input_changes_nothing(records, start):
    _load(start)
    _sync(records)
    _mapped, again = _sync(records)
    assert again.writes == 0, again


@st.composite
def synced_source(draw):
    """Accounts with distinct names, anchors and numbers: a first run syncs every one of them."""
    count = draw(st.integers(0, 6))
    pool = ["anna", "bob", "carla", "dino", "eva", "fritz", "gina", "hugo"]
    chosen = draw(st.permutations(pool))[:count]
    numbers_ = draw(st.permutations(["100", "101", "102", "103", "104", "105", "106", "107"]))
    return [SourceRecord(f"CN={n}", {"sAMAccountName": n, "objectGUID": f"{{g-{i}}}", "givenName": "G",
                                     "mail": f"{n}@example.test", "userAccountControl": "512",
                                     "msRTCSIP-PrimaryUserAddress": f"sip:{numbers_[i]}@example.test"})
            for i, n in enumerate(chosen)]


@CASES
@given(synced_source(), st.lists(account(), max_size=6), st.integers(0, 3))
def test_delta_run_ends_where_a_full_run_does(first, changes, leaving):
    """From a synced state, the source changes (edits, renames, disables, new accounts, leavers); a delta run —
    the changed records and the removed anchors only — leaves the same table as a full read.

    (Accounts a clash kept out earlier are retried by a delta only when they change — by the next full read at
    the latest — so the first state has none: every account of ``first`` is synced.)
    """
    _load([])
    _sync(first)
    synced = list(_table().values())
    current = {r.get("objectGUID"): r for r in first}
    removed = set(list(current)[:leaving])
    changed = {c.get("objectGUID"): c for c in changes if c.get("objectGUID") not in removed}
    changed = {g: c for g, c in changed.items() if current.get(g) != c}
    current.update(changed)
    for g in removed:
        current.pop(g)
    full_source = list(current.values())
    if len({c.get("sAMAccountName").casefold() for c in full_source}) != len(full_source):
        return  # two accounts under one name: the full read skips both, a delta sees only the changed one
    _sync(full_source)
    full = _table()
    _load(synced)
    _sync(list(changed.values()), removed=removed)
    assert _same_but_ids(_table(), full)


def _same_but_ids(a: dict, b: dict) -> bool:
    """Same users with the same values (row ids and write times may differ between two ways of getting there)."""
    def rows(table: dict) -> list:
        return sorted(sorted((k, str(v)) for k, v in r.items() if k not in ("id", "created_at", "updated_at"))
                      for r in table.values())
    return rows(a) == rows(b)
