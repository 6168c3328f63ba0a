"""The search test: the rules' real search, as a run reads it, with the count and a few entries as the rules map
them — what a connection's Test button and ``usersync-db test-search`` show.

A bind that works says nothing of the search: a one-level scope, a filter that lost a group or an OU moved away
bind fine and return nobody. The test reads the whole scope (paging as a run pages), counts it, maps the first
entries and says what the mapping skips, and writes nothing anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from usersync.core.progress import Progress
from usersync.plan.mapping import map_records
from usersync.rules import Rules
from usersync.sources.base import Source

#: entries shown with their mapped values
SAMPLES = 3


@dataclass
class SearchTest:
    """What the search returned: how many entries, the first mapped ones, those the mapping skips."""

    source: str
    url: str
    count: int = 0
    samples: list[str] = field(default_factory=list)
    skipped: int = 0
    first_skip: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.count > 0

    def lines(self) -> list[str]:
        out = [f"source {self.source}: the rules' search at {self.url} returned {self.count} entr"
               + ("y" if self.count == 1 else "ies")]
        if not self.count:
            out.append("  nobody: a run would stop here (wrong object path, scope or filter? lost read permission?)")
        out += [f"  {s}" for s in self.samples]
        if self.skipped:
            out.append(f"  {self.skipped} of them would be skipped by the mapping, the first: {self.first_skip}")
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def _sample(user) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in user.values.items() if v not in (None, "") and k != "username")
    return f"{user.values.get('username')} ({user.domain}\\{user.ad_username}): {values}"


def search_test(source: Source, rules: Rules, samples: int = SAMPLES, log=None) -> SearchTest:
    """Run the rules' search on ``source`` (already built from the rules) and map the first ``samples`` entries."""
    info = source.check()
    result = SearchTest(rules.source.name, str(info.get("url")), warnings=list(info.get("warnings", [])))
    progress = Progress(f"search test {rules.source.name}", log) if log is not None else None
    batch: list = []

    def mapped(records: list) -> None:
        users, bad = map_records(rules, records)
        result.samples += [_sample(u) for u in users][: samples - len(result.samples)]
        result.skipped += len(bad)
        if bad and result.first_skip is None:
            result.first_skip = f"{bad[0].account}: {bad[0].reason}"

    for record in source.records(info):
        result.count += 1
        batch.append(record)
        if len(batch) == 1000:
            mapped(batch)
            batch = []
        if progress is not None:
            progress.advance()
    if batch:
        mapped(batch)
    if progress is not None:
        progress.done()
    return result
