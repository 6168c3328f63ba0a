"""A source's health across runs: when failures put it in quarantine, how its scheduled runs back off, and when
an alarm is due — so the same failure is said once, not every night.

Wrong credentials (or a certificate the server will not take) quarantine a source at once: no retry can fix them,
and retrying a bad password can lock the service account. Other failures — an unreachable server, a timeout, a
query the source refuses — quarantine it after ``FAILURES_BEFORE_QUARANTINE`` runs in a row. In quarantine,
scheduled runs are skipped until the next try (``BACKOFF_DAYS`` after the last failure: 2, 4, then every 7 days);
a manual run always tries, and a run that applies, or an admin's release, ends the quarantine. A guard that
blocks a run is no failure of the source, and bad data never quarantines a source: only the user (parked).

An alarm is due on the first failure, on entering quarantine, and when the reason changes; not for a failure
that repeats the last alarmed one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

OK, FAILING, QUARANTINED = "ok", "failing", "quarantined"
CREDENTIALS, UNREACHABLE, SOURCE, OTHER = "credentials", "unreachable", "source", "other"

#: failure type (the exception's class name, as a failed step records it) → kind
KINDS = {
    "SourceAuthError": CREDENTIALS, "SourceTlsError": CREDENTIALS,
    "SourceUnreachable": UNREACHABLE, "AirflowTaskTimeout": UNREACHABLE, "TimeoutError": UNREACHABLE,
    "SourceQueryError": SOURCE, "EmptySource": SOURCE, "SourceError": SOURCE,
}
#: failed runs in a row, of a kind, that put a source in quarantine
FAILURES_BEFORE_QUARANTINE = {CREDENTIALS: 1, UNREACHABLE: 3, SOURCE: 3, OTHER: 3}
#: days from a failure in quarantine to the next scheduled try: the first, the second, then each later one
BACKOFF_DAYS = (2, 4, 7)
#: what ends a quarantine, in the words the report and the reports page use
CLEARS = {
    CREDENTIALS: "correct the password or certificate in the source's Airflow connection (its Test button checks "
                 "it), then trigger a run or release the source",
    UNREACHABLE: "make the server reachable (its Test button checks it), then trigger a run or release the source",
    SOURCE: "fix the rules' search (object path, filter) or the source, then trigger a run or release the source",
    OTHER: "fix the cause in the task log, then trigger a run or release the source",
}


def kind_of(failure_type: str) -> str:
    return KINDS.get(failure_type, OTHER)


@dataclass(frozen=True)
class Health:
    """What is kept of a source's failures (``source_health``)."""

    state: str = OK
    failures: int = 0
    failure_kind: str | None = None
    reason: str | None = None
    first_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_run_id: str | None = None
    quarantined_at: datetime | None = None
    next_try_at: datetime | None = None
    alarmed_reason: str | None = None

    @property
    def clears(self) -> str:
        return CLEARS[self.failure_kind or OTHER]


@dataclass(frozen=True)
class Failed:
    """A failure recorded: the health after it, and whether its alarm is due (and why)."""

    health: Health
    alarm: str | None  # "first failure", "entered quarantine", "reason changed"; None: said already


def after_failure(before: Health, failure_type: str, reason: str, at: datetime, run_id: str) -> Failed:
    """The health after a failed run at ``at`` (its due time)."""
    kind = kind_of(failure_type)
    said = f"{failure_type}: {reason}"
    same_run = before.failure_kind == kind
    failures = before.failures + 1 if same_run else 1
    quarantined = before.state == QUARANTINED or failures >= FAILURES_BEFORE_QUARANTINE[kind]
    in_quarantine = failures - FAILURES_BEFORE_QUARANTINE[kind]  # 0: the failure that put it there
    health = replace(
        before, state=QUARANTINED if quarantined else FAILING, failures=failures, failure_kind=kind, reason=said,
        first_failure_at=before.first_failure_at if before.failures else at, last_failure_at=at,
        last_failure_run_id=run_id,
        quarantined_at=(before.quarantined_at or at) if quarantined else None,
        next_try_at=at + timedelta(days=BACKOFF_DAYS[min(max(in_quarantine, 0), len(BACKOFF_DAYS) - 1)])
        if quarantined else None,
        alarmed_reason=before.alarmed_reason)
    if quarantined and before.state != QUARANTINED:
        alarm: str | None = "entered quarantine"
    elif before.alarmed_reason is None:
        alarm = "first failure"
    elif before.alarmed_reason != said:
        alarm = "reason changed"
    else:
        alarm = None
    if alarm:
        health = replace(health, alarmed_reason=said)
    return Failed(health, alarm)


def skip_reason(health: Health, scheduled: bool, due: datetime) -> str | None:
    """Why a run due at ``due`` does not try the source (None: it tries): a scheduled run of a quarantined source
    before its next try. A manual run always tries."""
    if not scheduled or health.state != QUARANTINED or health.next_try_at is None or due >= health.next_try_at:
        return None
    return quarantine_line(health)


def quarantine_line(health: Health) -> str:
    """The quarantine in one line: since when, why, what clears it, the next scheduled try."""
    since = health.quarantined_at.isoformat(timespec="minutes") if health.quarantined_at else "?"
    after = health.next_try_at.isoformat(timespec="minutes") if health.next_try_at else "the next run"
    return (f"QUARANTINED since {since} after {health.failures} failed run(s) in a row ({health.reason}); "
            f"to end it: {health.clears}; next scheduled try: {after}")
