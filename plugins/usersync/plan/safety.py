"""The mass-delete guard: a plan that would remove too many users is not applied at all.

Incidents this prevents, seen in other sync tools: Zulip deactivating everyone when LDAP was unreachable, wg-portal
and Gitea disabling everyone after a successful-but-empty search. An empty extract is stopped earlier, at the
source; this guard catches what gets past it (a wrong filter, a renamed key attribute, a pruned OU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from usersync.core.errors import Blocked
from usersync.plan.guard import Guard
from usersync.rules.model import SafetySpec


def person(triggered_by: str | None) -> str:
    """Who set an override, in a report's words (Airflow names runs started on its own host ``dag_test``)."""
    return triggered_by if triggered_by not in (None, "dag_test") else "the Airflow host (no signed-in user)"


class UnsafePlan(Blocked, RuntimeError):
    """The plan exceeds the mass-delete limits; nothing was written."""


REMOVALS = Guard("mass-delete guard", "allow_mass_delete", UnsafePlan)


@dataclass(frozen=True)
class Verdict:
    removals: int  # deletes + disables planned
    owned: int
    percent: float
    max_deletes: int
    max_delete_percent: float
    blocked: bool
    allowed_by_override: bool
    approved_by: str | None = None  # the admin who approved this blocked run in Airflow's UI
    overridden_by: str | None = None  # who triggered the run that set allow_mass_delete
    #: removals not yet confirmed with the source (``usersync.run.confirm``): over safety.max_confirmations
    unconfirmed: int = 0
    max_confirmations: int | None = None

    @property
    def message(self) -> str:
        head = (
            f"{self.removals} of the {self.owned} users this source owns would be removed "
            f"({self.percent:.1f}%; limits: {self.max_deletes} users, {self.max_delete_percent:g}%)"
        )
        if self.blocked and self.unconfirmed:
            return (
                f"BLOCKED: {self.unconfirmed} removal(s) would first have to be confirmed with the source account "
                f"by account — more than safety.max_confirmations ({self.max_confirmations}) allows in one run. "
                f"{head}. Nothing was written. If so many accounts really left, approve the run in Airflow's "
                "Required Actions (each removal is then confirmed before it is applied) or trigger the DAG once "
                "with allow_mass_delete = true; the next run is guarded again."
            )
        if self.blocked:
            return (
                f"BLOCKED by the mass-delete guard: {head}. Nothing was written. If the directory change is "
                "intended, approve the run in Airflow's Required Actions (when approvals are on) or trigger the "
                "DAG once with the parameter allow_mass_delete = true; the next run is guarded again."
            )
        if self.allowed_by_override and self.approved_by:
            return f"mass-delete guard lifted for this run, approved by {self.approved_by}: {head}"
        if self.allowed_by_override:
            return (f"mass-delete guard overridden for this run (allow_mass_delete, set by "
                    f"{person(self.overridden_by)}): {head}")
        return f"mass-delete guard passed: {head}"

    def to_json(self) -> dict:
        return {**asdict(self), "message": self.message}


def check_removals(removals: int, owned: int, limits: SafetySpec, allow_mass_delete: bool = False,
                   approved_by: str | None = None, unconfirmed: int = 0, overridden_by: str | None = None) -> Verdict:
    """The guard on counts alone (a saved plan's reference carries them; no need to read its tables).
    An admin's approval (``approved_by``) lifts it like ``allow_mass_delete``, for this run only.
    ``unconfirmed``: removals the source was not asked about (more than ``max_confirmations``): they block too."""
    allow_mass_delete = allow_mass_delete or approved_by is not None
    percent = 100.0 * removals / owned if owned else 0.0
    over = removals > limits.max_deletes or percent > limits.max_delete_percent or unconfirmed > 0
    return Verdict(
        removals=removals,
        owned=owned,
        percent=percent,
        max_deletes=limits.max_deletes,
        max_delete_percent=limits.max_delete_percent,
        blocked=over and not allow_mass_delete,
        allowed_by_override=over and allow_mass_delete,
        approved_by=approved_by if over else None,
        overridden_by=overridden_by if over and allow_mass_delete and approved_by is None else None,
        unconfirmed=unconfirmed,
        max_confirmations=limits.max_confirmations if unconfirmed else None,
    )
