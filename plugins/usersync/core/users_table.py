"""The users database, owned by this project: the users table and the sync state next to it.

One schema serves PostgreSQL (production) and SQLite (embedded default). Uniqueness that the database can
express is enforced by indexes; number uniqueness across the four number columns is enforced by the diff.
These tables describe the schema at the newest migration (``usersync/migrations``); ``usersync.store.schema_version``
creates and upgrades databases, and a test proves migrations and these tables agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    text,
    true,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False, comment="login; unique, case-insensitive"),
    Column("first_name", String(128)),
    Column("last_name", String(128)),
    Column("email", String(320)),
    Column("department", String(256)),
    Column("extension", String(64), comment="first extension number"),
    Column("alias_extension", String(64)),
    Column("voicemail_number", String(64)),
    Column("fax_number", String(64)),
    Column("mobile", String(64)),
    Column("language", String(16)),
    Column("personal_address", String(512)),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("voicemail_enabled", Boolean, nullable=False, server_default=false()),
    Column("call_recording_license", Boolean, nullable=False, server_default=false()),
    Column("hidden_from_directory", Boolean, nullable=False, server_default=false()),
    Column("ad_username", String(256), comment="sync key, with domain; blank for local users"),
    Column("domain", String(256), comment="sync key, with ad_username; blank for local users"),
    Column("external_id", String(128), comment="immutable source anchor (objectGUID, CUCM uuid)"),
    Column("source", String(64), comment="name of the source that owns this user; NULL = not owned"),
    Column("disabled_by_sync", Boolean, nullable=False, server_default=false(),
           comment="disabled because the account left its source (deletion policy 'disable'); re-enabled if it returns"),
    Column("left_at", DateTime(timezone=True), nullable=True,
           comment="when the account was first found gone from its source (the run's due time, UTC); NULL while present"),
    Column("sync_protected", Boolean, nullable=False, server_default=false(),
           comment="set by the application or an admin: no sync ever deletes or disables this user"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

_KEYED = text("ad_username IS NOT NULL AND ad_username <> ''")

Index("ux_users_username", func.lower(users.c.username), unique=True)
Index(
    "ux_users_sync_key",
    func.lower(users.c.ad_username),
    func.lower(users.c.domain),
    unique=True,
    postgresql_where=_KEYED,
    sqlite_where=_KEYED,
)
Index("ix_users_source", users.c.source)


#: One row per source: what is kept of it between runs — the read position of its last applied run (only its
#: reader interprets ``read_position``) and facts about the source beyond it.
source_state = Table(
    "source_state",
    metadata,
    Column("source", String(64), primary_key=True, comment="rules source name"),
    Column("read_server", String(512), nullable=True,
           comment="where the last applied read read (a DC's dsServiceName, a tenant)"),
    Column("read_position", Text, nullable=True,
           comment="how far it read, as JSON only its reader interprets (AD: invocation_id, usn; Graph: cursor)"),
    Column("rules_hash", String(64), nullable=True, comment="SHA-256 of the rules the last read used"),
    Column("full_at", DateTime(timezone=True), nullable=True, comment="when the last full read ran"),
    Column("saved_at", DateTime(timezone=True), nullable=False, comment="when this row last changed"),
    Column("facts", Text, nullable=True, comment="facts about the source beyond its read position (JSON)"),
)


#: The per-user log: one row per decision a run made about a user (``usersync.store.user_log`` writes it in the
#: apply transaction; ``usersync.store.history`` reads it). A decision that repeats run after run (a skip, a
#: held removal) stays one row: ``at`` first seen, ``last_at`` last seen, ``seen`` how many runs.
user_events = Table(
    "user_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, comment="when the run applied (first seen, for repeats)"),
    Column("last_at", DateTime(timezone=True), nullable=True, comment="last seen (repeating decisions)"),
    Column("seen", Integer, nullable=False, server_default=text("1"), comment="runs that made this decision"),
    Column("run_id", String(250), nullable=False, comment="the run that made the decision (first, for repeats)"),
    Column("last_run_id", String(250), nullable=True, comment="the last run that made it again"),
    Column("source", String(64), nullable=True, comment="rules source name"),
    Column("rules_hash", String(64), nullable=True, comment="SHA-256 of the rules file the run followed"),
    Column("action", String(24), nullable=False,
           comment="inserted, updated, returned, deleted, disabled, detached, held, skipped, written_back"),
    Column("code", String(64), nullable=True, comment="why an account was skipped (SkipCode)"),
    Column("user_id", Integer, nullable=True, comment="users.id of the user (NULL: a skipped account)"),
    Column("username", String(256), nullable=True),
    Column("ad_username", String(256), nullable=True),
    Column("domain", String(256), nullable=True),
    Column("external_id", String(128), nullable=True, comment="the account's anchor"),
    Column("approved_by", String(256), nullable=True, comment="who let the run through a guard, and the answer"),
    Column("detail", Text, nullable=True,
           comment="JSON: changes {column: [old, new]}, row (the values to restore), reason, account, note"),
    Column("fingerprint", String(64), nullable=True, comment="what makes a repeating decision the same one"),
    Column("open", Boolean, nullable=False, server_default=false(),
           comment="a repeating decision the source's last full run still made"),
)

Index("ix_user_events_user", user_events.c.user_id)
Index("ix_user_events_username", func.lower(user_events.c.username))
Index("ix_user_events_ad_username", func.lower(user_events.c.ad_username))
Index("ix_user_events_anchor", user_events.c.external_id)
Index("ix_user_events_run", user_events.c.run_id)
Index("ix_user_events_at", user_events.c.at)
Index("ix_user_events_open", user_events.c.source, user_events.c.fingerprint,
      postgresql_where=user_events.c.open, sqlite_where=user_events.c.open)

#: Cases an administrator decides (``usersync.store.cases``): a number held aside because another user holds it,
#: or an account that may be an existing local user. One row per case, keyed per source by ``key`` (the claimant's
#: anchor, else its AD username + Domain; and the field for a number), so a case survives renames of either side.
#: Opened, refreshed and closed by apply in the run's transaction; decided by an admin in the cases page or API.
cases = Table(
    "cases",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False, comment="rules source name"),
    Column("kind", String(16), nullable=False, comment="number (a held number) or match (a proposed match)"),
    Column("key", String(600), nullable=False, comment="what makes the case the same one from run to run"),
    Column("status", String(16), nullable=False,
           comment="open, decided (waits for the next run), kept (the holder keeps the number), rejected, closed"),
    Column("decision", String(16), nullable=True, comment="confirm, reject, give, keep"),
    Column("user_id", Integer, nullable=True, comment="confirm: the user the account is linked to"),
    Column("decided_by", String(256), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("0"),
           comment="raised by each decision: a run applies exactly the decision it read"),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("opened_run_id", String(250), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("last_run_id", String(250), nullable=False),
    Column("seen", Integer, nullable=False, server_default=text("1"), comment="runs that found the case"),
    Column("changed_at", DateTime(timezone=True), nullable=True, comment="when holder, value or candidates changed"),
    Column("announced_at", DateTime(timezone=True), nullable=True, comment="when a report last announced it"),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_run_id", String(250), nullable=True),
    Column("outcome", String(256), nullable=True, comment="how the case ended"),
    Column("account", String(512), nullable=True, comment="the claimant account, as the source names it"),
    Column("username", String(256), nullable=True, comment="the claimant's username"),
    Column("ad_username", String(256), nullable=True),
    Column("domain", String(256), nullable=True),
    Column("external_id", String(128), nullable=True),
    Column("field", String(64), nullable=True, comment="number: the field held aside"),
    Column("value", String(256), nullable=True, comment="number: the value held aside"),
    Column("holder_id", Integer, nullable=True, comment="number: users.id of the holder"),
    Column("holder", String(256), nullable=True, comment="number: the holder's username"),
    Column("detail", Text, nullable=True, comment="JSON: the account's values, the candidates, the holder's owner"),
)
Index("ix_cases_source_status", cases.c.source, cases.c.status)
Index("ux_cases_live_key", cases.c.source, cases.c.key, unique=True,
      postgresql_where=cases.c.closed_at.is_(None), sqlite_where=cases.c.closed_at.is_(None))

#: Each source's health between runs (``usersync.store.source_health``): its last applied full read (what the
#: change guard compares a read with), its last success, and its run of failures — the quarantine that backs its
#: scheduled runs off, and the reason last alarmed (one alarm per reason). Written in the transaction of what it
#: records: the read and the success by apply, a failure by the report of the failed run.
source_health = Table(
    "source_health",
    metadata,
    Column("source", String(64), primary_key=True, comment="rules source name"),
    Column("last_read", Integer, nullable=True, comment="accounts the last applied full read returned"),
    Column("last_read_where", Text, nullable=True, comment="JSON: those accounts per place (OU, domain)"),
    Column("last_read_at", DateTime(timezone=True), nullable=True),
    Column("last_read_run_id", String(250), nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("last_success_run_id", String(250), nullable=True),
    Column("state", String(16), nullable=False, server_default=text("'ok'"), comment="ok, failing or quarantined"),
    Column("failure_kind", String(32), nullable=True, comment="credentials, unreachable, timeout, source, other"),
    Column("reason", Text, nullable=True, comment="the last failure, in one line (never a secret)"),
    Column("failures", Integer, nullable=False, server_default=text("0"), comment="failed runs in a row"),
    Column("first_failure_at", DateTime(timezone=True), nullable=True),
    Column("last_failure_at", DateTime(timezone=True), nullable=True),
    Column("last_failure_run_id", String(250), nullable=True),
    Column("quarantined_at", DateTime(timezone=True), nullable=True),
    Column("next_try_at", DateTime(timezone=True), nullable=True,
           comment="quarantined: scheduled runs before this skip the source"),
    Column("alarmed_reason", Text, nullable=True, comment="the reason the last alarm named (one alarm per reason)"),
    Column("alarmed_at", DateTime(timezone=True), nullable=True),
    Column("released_by", String(256), nullable=True, comment="who last released the source from quarantine"),
    Column("released_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: What administrators did to a source's configuration from the console (``usersync.store.admin_log``): a draft
#: saved, rules gone live (with the text they replaced), a source or connection created, a Test, a run triggered,
#: the schedule enabled. Beside the per-user log, so "who changed the rules before that run" is one query away.
admin_log = Table(
    "admin_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(256), nullable=False, comment="the Airflow user"),
    Column("source", String(64), nullable=False, comment="rules source name"),
    Column("action", String(32), nullable=False,
           comment="draft, live, created, connection, test, triggered, schedule"),
    Column("ok", Boolean, nullable=False, server_default=true(), comment="false: a Test that failed"),
    Column("summary", Text, nullable=False, comment="what was done, in one line (never a secret)"),
    Column("detail", Text, nullable=True, comment="JSON: the settings changed, the Test's lines, the run id"),
    Column("before_text", Text, nullable=True, comment="the rules file's text this change replaced"),
    Column("after_text", Text, nullable=True, comment="the rules file's text after the change"),
)

Index("ix_admin_log_source", admin_log.c.source, admin_log.c.at)
