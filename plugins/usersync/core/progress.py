"""Progress lines at a steady pace, so an admin watching a long task log knows it is alive."""

from __future__ import annotations

import logging
import time


class Progress:
    """Call ``advance(n)``; a line is logged at most every ``every`` seconds, and once at ``done()``.

    Each line says the count so far, the rate, and the total and ETA when the total is known.
    """

    def __init__(self, what: str, logger: logging.Logger, total: int | None = None, every: float = 5.0, clock=time.monotonic):
        self.what, self.log, self.total, self.every, self.clock = what, logger, total, every, clock
        self.count = 0
        self.started = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.what}: {self.count:,}"
        if self.total is not None:
            text += f" of {self.total:,}"
        text += f" ({rate:,.0f}/s, {elapsed:.1f} s"
        if self.total is not None and rate > 0 and self.count < self.total:
            text += f", ETA {(self.total - self.count) / rate:.0f} s"
        return text + ")"

    def done(self) -> None:
        self.log.info("%s — done", self.line())
