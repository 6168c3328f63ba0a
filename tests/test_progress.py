"""Progress lines come at a steady pace with count, rate and (when known) total and ETA."""

import logging

from usersync.core.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_at_most_every_interval_with_rate_total_and_eta(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO)
    p = Progress("apply demo", logging.getLogger("t"), total=1000, every=5.0, clock=clock)
    for _ in range(20):  # 20 batches of 50, one per second
        clock.now += 1.0
        p.advance(50)
    p.done()
    lines = caplog.messages
    assert len(lines) == 5  # at 5, 10, 15, 20 s, and done
    assert lines[0] == "apply demo: 250 of 1,000 (50/s, 5.0 s, ETA 15 s)"
    assert lines[-1].startswith("apply demo: 1,000 of 1,000") and lines[-1].endswith("done")


def test_without_total_there_is_no_eta(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO)
    p = Progress("extract", logging.getLogger("t"), every=1.0, clock=clock)
    clock.now = 2.0
    p.advance(4000)
    assert caplog.messages == ["extract: 4,000 (2,000/s, 2.0 s)"]
