"""The rules file as a typed model: one YAML per source, validated with pydantic.

A rules file says where users come from (``source``, one spec per source type: ``usersync.sources.registry``),
when the daily run happens (``schedule``), where they go (``target``), how runs are guarded (``safety``), reported
(``report``) and alarmed (``alarms``, ``notify``), per target field, which policy applies (``fields``), which users are never
removed (``protect``) and which values the application owns go back to the source (``write_back``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from usersync.core.models import StrictModel
from usersync.rules import transforms
from usersync.rules.fields import FIELDS, NUMBER_FIELDS, Kind, Policy
from usersync.rules.match import MatchRule
from usersync.rules.notify import NotifyTarget
from usersync.rules.protect import ProtectRule
from usersync.rules.write_back import WriteBackSpec
from usersync.sources.registry import SOURCE_TYPES, SourceSpec, spec_class, writes_back
from usersync.sources.spec import listed

#: the policies under which the application owns a field's value: the only fields written back (an imported
#: field written back to its own source would loop)
APPLICATION_OWNED = frozenset({Policy.KEEP, Policy.ON_INSERT, Policy.DEFAULT_IF_EMPTY})


class ScheduleSpec(StrictModel):
    """Auto mode: one run a day at ``hour:minute`` in ``timezone``. Off: manual runs only."""

    auto: bool = False
    hour: Annotated[int, Field(ge=0, le=23)] = 2
    minute: Annotated[int, Field(ge=0, le=59)] = 0
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v

    @property
    def cron(self) -> str | None:
        return f"{self.minute} {self.hour} * * *" if self.auto else None


class TargetSpec(StrictModel):
    """Where the users table lives: an Airflow connection id (default: the embedded SQLite database)."""

    conn_id: str = "usersync_target"


class RunSpec(StrictModel):
    """How Airflow runs the DAG: retries apply to transient failures (an unreachable server)."""

    retries: Annotated[int, Field(ge=0, le=10)] = 2
    retry_delay_minutes: Annotated[float, Field(ge=0.1, le=1440)] = 5
    #: a read that takes longer than this fails (and is retried): a hung directory never blocks the next day
    extract_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    #: every other step (check_source, map, diff with its confirmations, apply, write-back, report) fails past this
    step_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = 60


class FieldLimit(StrictModel):
    """How much of one field a run may change before it waits for approval (shares of the users the source owns)."""

    #: users whose value of this field the run changes (any new value, cleared included)
    max_changed_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    #: users whose value the run clears (had one, gets none): a renamed or unreadable attribute looks like this
    max_cleared_percent: Annotated[float, Field(ge=0, le=100)] | None = None


class SafetySpec(StrictModel):
    """The mass-delete guard and what happens to users that left the source.

    A run that would delete (or disable) more than ``max_deletes`` users, or more than ``max_delete_percent`` of
    the users this source owns, is blocked whole — like Entra Connect's 500-deletion threshold — until an admin
    approves that run in Airflow's UI (or lets one run through with the ``allow_mass_delete`` trigger parameter).
    """

    deletion: Literal["delete", "disable", "keep"] = "delete"
    #: with deletion 'disable': a user gone this many days (24 h each, counted between runs' due times) is
    #: deleted by the next run; an account back before then is re-enabled as it was. 0: disabled for good
    delete_after_days: Annotated[int, Field(ge=0, le=3650)] = 0
    max_deletes: Annotated[int, Field(ge=0)] = 500
    max_delete_percent: Annotated[float, Field(ge=0, le=100)] = 20.0
    #: sources whose listing can shift while it is read (SCIM, CUCM) confirm each removal with the source, one
    #: lookup each; more removals than this in one run wait for an approval before they are confirmed
    max_confirmations: Annotated[int, Field(ge=0)] = 1000
    #: a blocked live run waits for an admin's Approve / Reject in Airflow's "Required Actions" instead of failing;
    #: false: it fails at once (re-trigger with allow_mass_delete), as before approvals existed
    approve_blocked_runs: bool = True
    #: no answer within this time is a Reject: nothing is written, the run ends as blocked (fractions allowed)
    approval_timeout_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    #: the change guard, before anything is written: a full read that returned this share fewer accounts than the
    #: last applied full read waits for approval, naming where the drop is (null: off)
    max_read_drop_percent: Annotated[float, Field(ge=0, le=100)] | None = 30.0
    #: the change guard per field: a run clearing a field on more than this share of the source's users waits
    #: for approval (every imported field; ``fields`` below overrides it per field; null: off)
    max_cleared_percent: Annotated[float, Field(ge=0, le=100)] | None = 30.0
    #: per-field limits, e.g. ``extension: {max_changed_percent: 40}``
    fields: dict[str, FieldLimit] = {}
    #: the share limits of the change guard count only when at least this many users are concerned: on a small
    #: source one user is a large share
    guard_min_users: Annotated[int, Field(ge=1)] = 10

    @model_validator(mode="after")
    def _grace_needs_disable(self) -> SafetySpec:
        if self.delete_after_days and self.deletion != "disable":
            raise ValueError(f"delete_after_days: a grace period needs deletion: disable (users are disabled "
                             f"while it runs), not {self.deletion!r}")
        return self

    @property
    def grace(self) -> bool:
        """Leavers are disabled first and deleted after ``delete_after_days``."""
        return self.deletion == "disable" and self.delete_after_days > 0


class ApprovalsSpec(StrictModel):
    """Four eyes: who answers approvals, and whose runs may carry the overrides that lift a guard.

    ``approvers`` are Airflow user ids (the login name with the simple auth manager, the user id with FAB); the
    approval tasks are assigned to them. The person who triggered a run never approves it unless
    ``self_approval`` is true (a single-admin installation). ``allow_mass_delete``, ``allow_mass_write_back`` and
    ``keep_as_local`` are honoured only in runs an approver triggered (or no person did: scheduled runs, and runs
    started on the Airflow host with ``airflow dags test``); otherwise the run asks for approval as if they were
    not set, and its report says why.
    """

    approvers: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    self_approval: bool = False


class ReportSpec(StrictModel):
    """Where run reports go and how long they stay."""

    directory: str | None = None  # default: $USERSYNC_REPORTS_DIR, else $USERSYNC_HOME/reports
    retention_days: Annotated[int, Field(ge=1)] = 15
    max_change_lines: Annotated[int, Field(ge=0)] = 200
    #: how long the per-user log keeps this source's records (a decision still repeating is kept while it does)
    history_days: Annotated[int, Field(ge=1)] = 400


class AlarmsSpec(StrictModel):
    """E-mail alarms (failure, blocked) and warnings (skipped users, insecure fallback), via Airflow's SMTP."""

    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    from_email: str | None = None
    notify_on_success: bool = False

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.fullmatch(r"[^@\s]+@[^@\s]+", a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return v


class FieldRule(StrictModel):
    """One target field's choice. ``value`` for constants, ``attribute`` (+ ``transforms``) for source data."""

    policy: Policy
    value: str | bool | None = None
    attribute: str | None = None
    prefix: str | None = None
    transforms: list[str] = Field(default_factory=list)
    #: number fields: what a value another user already holds does — ``hold`` (the default: the user is written
    #: without it and a case opens) or ``skip`` (the whole account is skipped)
    on_clash: Literal["hold", "skip"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # "keep" alone is the common case: allow it as a bare string.
        return {"policy": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _shape(self) -> FieldRule:
        p = self.policy
        for spec in self.transforms:
            transforms.parse(spec)
        if p is Policy.KEEP and (self.value is not None or self.attribute or self.prefix or self.transforms):
            raise ValueError("'keep' takes no value, attribute, prefix or transforms")
        if p is Policy.ON_INSERT and (self.value is None or self.attribute):
            raise ValueError("'on_insert' needs a 'value' (and no attribute)")
        if p in (Policy.IMPORT, Policy.PREFIX) and (not self.attribute or self.value is not None):
            raise ValueError(f"'{p.value}' needs an 'attribute' (and no value)")
        if p is Policy.PREFIX and self.prefix is None:
            raise ValueError("'prefix' needs a 'prefix' string (it may be empty)")
        if p is not Policy.PREFIX and self.prefix is not None:
            raise ValueError(f"'prefix' is only valid with policy 'prefix', not '{p.value}'")
        if p is Policy.DEFAULT_IF_EMPTY and (self.value is None) == (self.attribute is None):
            raise ValueError("'default_if_empty' needs exactly one of 'value' or 'attribute'")
        if self.value is not None and self.transforms:
            raise ValueError("transforms apply to source attributes, not to constant values")
        return self


#: words of an attribute name that say it holds a credential: never read from a source (so never shown, stored or
#: exported); also as the end of a word run together (``userpassword``, ``unicodePwd``)
SECRET_WORDS = ("password", "passwd", "passcode", "passphrase", "pass", "pwd", "secret", "secrets", "credential",
                "credentials", "token", "pin")
_ENDINGS = ("password", "passwd", "pwd", "secret", "token", "credential")


def looks_secret(attribute: str) -> bool:
    """Whether a source attribute's name says it holds a secret (``userPassword``, ``portal_password``, ``mailPin``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", attribute).lower()
    return any(w in SECRET_WORDS or w.endswith(_ENDINGS) for w in re.sub(r"[^a-z0-9]", " ", spaced).split())


class Rules(StrictModel):
    """A whole rules file."""

    source: SourceSpec
    schedule: ScheduleSpec = ScheduleSpec()
    target: TargetSpec = TargetSpec()
    run: RunSpec = RunSpec()
    safety: SafetySpec = SafetySpec()
    approvals: ApprovalsSpec = ApprovalsSpec()
    report: ReportSpec = ReportSpec()
    alarms: AlarmsSpec = AlarmsSpec()
    #: chat channels and services told what the alarm mail says (``usersync.rules.notify``)
    notify: list[NotifyTarget] = Field(default_factory=list)
    fields: dict[str, FieldRule]
    #: conditions on users-table values: a user meeting one is never deleted or disabled (``rules.protect``)
    protect: list[ProtectRule] = Field(default_factory=list)
    #: values the application owns, written back to the directory after each run (``usersync.run.write_back``)
    write_back: WriteBackSpec | None = None
    #: how an account no user has yet may be recognised as an existing local user (``rules.match``)
    match: list[MatchRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _fill_omitted_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = dict(data)
            data["fields"] = {**{n: "keep" for n in FIELDS if n != "username"}, **data["fields"]}
        src = data.get("source") if isinstance(data, dict) else None
        spec = spec_class(src.get("type")) if isinstance(src, dict) else None
        if spec is not None and spec.on_demand:  # an import of a file never removes users
            safety = data.get("safety") if isinstance(data.get("safety"), dict) else {}
            data = {**data, "safety": {"deletion": "keep", **safety}}
        return data

    @model_validator(mode="after")
    def _source_fits(self) -> Rules:
        if self.source.on_demand and self.safety.deletion != "keep":
            raise ValueError(f"safety.deletion: a {self.source.type} import never removes users; it must be 'keep'")
        if self.source.on_demand and self.schedule.auto:
            raise ValueError(f"schedule.auto: a {self.source.type} import runs on demand "
                             "(the file is chosen when triggering)")
        self.source.check_attributes(self.source_attributes())
        secrets = [a for a in self.source_attributes() if looks_secret(a)]
        if secrets:
            raise ValueError(f"attribute {secrets[0]!r}: its name says it holds a secret (password, PIN, token…); a "
                             "secret is never read into the users table, a report, the change set or a log — map "
                             "another attribute")
        unmapped = [f"match[{i}]: by {m.by} compares {', '.join(m.fields)}, which the rules do not map from the "
                    "source (policy keep); map it or drop this entry"
                    for i, m in enumerate(self.match) if any(self.fields[f].policy is Policy.KEEP for f in m.fields)]
        if unmapped:
            raise ValueError("\n".join(unmapped))
        unknown = [f"safety.fields.{name}: not a field of the users table ({', '.join(FIELDS)})"
                   for name in self.safety.fields if name not in FIELDS]
        if unknown:
            raise ValueError("\n".join(unknown))
        if self.write_back is not None:
            problems = _write_back_problems(self)
            if problems:
                raise ValueError("\n".join(problems))
        return self

    def field_limits(self) -> dict[str, FieldLimit]:
        """The change guard's limits per field the source writes (``import`` / ``prefix``): ``safety.fields``
        over ``safety.max_cleared_percent``."""
        out = {}
        for name, rule in self.fields.items():
            if rule.policy not in (Policy.IMPORT, Policy.PREFIX):
                continue
            own = self.safety.fields.get(name)
            limit = FieldLimit(
                max_changed_percent=own.max_changed_percent if own else None,
                max_cleared_percent=own.max_cleared_percent if own and own.max_cleared_percent is not None
                else self.safety.max_cleared_percent)
            if limit.max_changed_percent is not None or limit.max_cleared_percent is not None:
                out[name] = limit
        return out

    @field_validator("fields")
    @classmethod
    def _capabilities(cls, fields: dict[str, FieldRule]) -> dict[str, FieldRule]:
        problems = []
        for name, rule in fields.items():
            problem = _capability_problem(name, rule)
            if problem:
                problems.append(f"fields.{name}: {problem}")
        if "username" not in fields:
            problems.append("fields.username: required (the login name of every synced user)")
        if problems:
            raise ValueError("\n".join(problems))
        return fields

    def rule(self, field: str) -> FieldRule:
        return self.fields[field]

    def held_numbers(self) -> frozenset[str]:
        """The number fields whose clashing value is held aside (a case) rather than skipping the account."""
        return frozenset(f for f in NUMBER_FIELDS if (self.fields[f].on_clash or "hold") == "hold")

    def mapped_attributes(self) -> list[str]:
        """The source attributes users-table values come from (the key, the anchor, the field rules')."""
        return self.source.own_attributes() + [r.attribute for r in self.fields.values() if r.attribute]

    def source_attributes(self) -> list[str]:
        """Every source attribute the rules read, key first: the extract asks for these only. Attributes written
        back are read too: what the directory holds now is what write-back compares with and replaces."""
        seen: list[str] = []
        wanted = self.mapped_attributes() + list(self.write_back.attributes if self.write_back else [])
        for attribute in wanted:
            if attribute.lower() not in {a.lower() for a in seen}:
                seen.append(attribute)
        return seen


def _write_back_problems(rules: Rules) -> list[str]:
    """Why the ``write_back`` section cannot be honoured: a source that cannot be written to, a field the
    application does not own, an attribute the rules read (it would come back as a change: a loop)."""
    assert rules.write_back is not None
    src = rules.source
    if not writes_back(src.type):
        return [f"write_back: {src.type} sources are read only; write-back is for "
                f"{listed(sorted(n for n, t in SOURCE_TYPES.items() if t.writer))} sources"]
    read = {a.lower(): a for a in rules.mapped_attributes()}
    problems = []
    for attribute, rule in rules.write_back.attributes.items():
        where = f"write_back.attributes.{attribute}"
        spec = FIELDS.get(rule.field)
        if spec is None:
            problems.append(f"{where}: unknown field {rule.field!r} (known: {', '.join(FIELDS)})")
            continue
        policy = rules.fields[rule.field].policy if rule.field in rules.fields else None
        if spec.kind is Kind.BOOL:
            problems.append(f"{where}: {rule.field} is a yes/no field; write back text fields only")
        elif policy not in APPLICATION_OWNED:
            shown = policy.value if policy else "import"
            problems.append(f"{where}: {rule.field} has policy {shown!r}: its value comes from the source, so "
                            "writing it back would loop; only fields the application owns (keep, on_insert, "
                            "default_if_empty) are written back")
        if attribute.lower() in read:
            problems.append(f"{where}: the rules read {read[attribute.lower()]} (key, anchor, domain or a field's "
                            "attribute); writing it would come back as a change on the next run: a loop")
        problem = src.write_back_problem(attribute)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _capability_problem(name: str, rule: FieldRule) -> str | None:
    spec = FIELDS.get(name)
    if spec is None:
        return f"unknown field (known: {', '.join(FIELDS)})"
    if rule.policy not in spec.policies:
        allowed = ", ".join(sorted(p.value for p in spec.policies))
        return f"policy '{rule.policy.value}' is not available for this field (allowed: {allowed})"
    if rule.on_clash is not None and spec.kind is not Kind.NUMBER:
        return f"on_clash is for the unique number fields ({', '.join(NUMBER_FIELDS)}), not {spec.kind.value} fields"
    if rule.value is not None and not spec.constants:
        return "a fixed value makes no sense for this field (each user has their own); import it instead"
    if spec.kind is Kind.BOOL:
        if rule.value is not None and not isinstance(rule.value, bool):
            return f"boolean field: value must be true or false, not {rule.value!r}"
        if rule.policy is Policy.IMPORT and not (rule.transforms and rule.transforms[-1].split(":")[0] in transforms.BOOL_TRANSFORMS):
            return f"boolean field: an imported value needs a boolean transform last ({', '.join(sorted(transforms.BOOL_TRANSFORMS))})"
    else:
        if isinstance(rule.value, bool):
            return f"text field: value must be text, not {rule.value!r}"
        if any(t.split(":")[0] in transforms.BOOL_TRANSFORMS for t in rule.transforms):
            return "boolean transforms are only for boolean fields"
    return None
