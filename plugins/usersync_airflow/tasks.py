"""What each task of a sync DAG does: load the rules, call the domain step, hand back JSON for XCom.

Failures that a retry cannot fix (bad credentials, untrusted certificate, wrong object path, invalid rules)
raise ``AirflowFailException`` so the run fails at once with the message; an unreachable server is retried.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from usersync import pipeline
from usersync.apply import ApplyError
from usersync.rules import Rules, RulesError, load_rules
from usersync.sources.errors import SourceError, SourceUnreachable
from usersync.summary import format_summary
from usersync.changes import ChangeSet
from usersync_airflow.hooks import LdapHook, UsersDbHook

log = logging.getLogger(__name__)


def rules_at(path: str) -> Rules:
    try:
        return load_rules(Path(path))
    except RulesError as exc:
        raise AirflowFailException(str(exc)) from None


def _fail_fast(exc: SourceError) -> Exception:
    return exc if isinstance(exc, SourceUnreachable) else AirflowFailException(f"{type(exc).__name__}: {exc}")


def check_source(rules_path: str) -> dict[str, Any]:
    """Connect and bind; resolve the search base. Returns where and how the source was reached."""
    rules = rules_at(rules_path)
    hook = LdapHook(rules.source.conn_id)
    try:
        directory = hook.get_conn()
        base = pipeline.resolve_base(rules, directory)
        log.info("source %s reachable at %s; search base %s", rules.source.name, directory.url, base)
        return {"url": directory.url, "base": base, "fell_back_to_plain": directory.fell_back}
    except SourceError as exc:
        raise _fail_fast(exc) from None
    finally:
        hook.close()


def extract(rules_path: str, source_info: dict[str, Any]) -> list[dict[str, Any]]:
    rules = rules_at(rules_path)
    hook = LdapHook(rules.source.conn_id)
    try:
        return pipeline.extract_ldap(rules, hook.get_conn(), source_info["base"])
    except SourceError as exc:
        raise _fail_fast(exc) from None
    finally:
        hook.close()


def map_users(rules_path: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return pipeline.map_step(rules_at(rules_path), records)


def diff(rules_path: str, mapped: dict[str, Any]) -> dict[str, Any]:
    rules = rules_at(rules_path)
    hook = UsersDbHook(rules.target.conn_id)
    try:
        return pipeline.diff_step(rules, mapped, hook.get_conn())
    finally:
        hook.close()


def apply(rules_path: str, plan: dict[str, Any]) -> dict[str, int]:
    rules = rules_at(rules_path)
    hook = UsersDbHook(rules.target.conn_id)
    try:
        written = pipeline.apply_step(plan, hook.get_conn())
    except ApplyError as exc:
        raise AirflowFailException(str(exc)) from None
    finally:
        hook.close()
    log.info("applied to the users table: %s", written)
    return written


def summarize(plan: dict[str, Any], written: dict[str, int]) -> str:
    text = format_summary(ChangeSet.from_json(plan), applied=True)
    for line in text.splitlines():
        log.info("%s", line)
    return text
