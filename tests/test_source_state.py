"""What the users database keeps of each source between runs (``source_state``): the read position and the
facts beside it, stored without either overwriting the other, inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine

from usersync.plan.read_plan import Watermark
from usersync.sources.read_state import ReadPosition
from usersync.store.schema_version import ensure_schema
from usersync.store.source_state import load_facts, load_watermark, save_facts, save_watermark

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_facts_and_the_read_position_are_kept_apart_per_source(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    ensure_schema(engine)
    assert load_watermark(engine, "corp") is None and load_facts(engine, "corp") == {}
    with engine.begin() as conn:
        save_facts(conn, "corp", {"failures": 2, "last_good_read": 1000}, T0)  # before any position
    assert load_watermark(engine, "corp") is None  # facts alone are no read position
    mark = Watermark("corp", ReadPosition("CN=DC1", {"invocation_id": "i", "usn": 7}), "h", T0)
    with engine.begin() as conn:
        save_watermark(conn, mark, T0)
    assert load_facts(engine, "corp") == {"failures": 2, "last_good_read": 1000}
    stored = load_watermark(engine, "corp")
    assert (stored.read, stored.rules_hash, stored.full_at, stored.saved_at) == (mark.read, "h", T0, T0)
    with engine.begin() as conn:
        save_facts(conn, "corp", {"failures": 0}, T0)
    assert load_watermark(engine, "corp").read == mark.read and load_facts(engine, "corp") == {"failures": 0}
    assert load_facts(engine, "branch") == {} and load_watermark(engine, "branch") is None


def test_a_rolled_back_transaction_keeps_neither(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    ensure_schema(engine)
    try:
        with engine.begin() as conn:
            save_watermark(conn, Watermark("corp", ReadPosition("tenant", {"cursor": "link"}), "h", T0), T0)
            save_facts(conn, "corp", {"failures": 1}, T0)
            raise RuntimeError("the apply failed")
    except RuntimeError:
        pass
    assert load_watermark(engine, "corp") is None and load_facts(engine, "corp") == {}
