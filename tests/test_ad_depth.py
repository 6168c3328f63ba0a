"""Active Directory depth on the real Samba AD DC: renames keep the user, re-created accounts, the three
disabled-account policies, nested group scoping, and delta sync (uSNChanged watermark, tombstones) that ends
exactly where a full read does.

Each test works in an OU of its own on the session's DC, so tests do not see each other's changes.
"""

from __future__ import annotations

import itertools
import random
import shutil

import pytest
from sqlalchemy import create_engine

from devtools.samba import BASE_DN
from tests.support.helpers import sync_once, table_rows, users_snapshot
from tests.support.rules import ad_rules
from usersync.rules import parse_rules
from usersync.run.report import change_lines
from usersync.sources import SourceQueryError
from usersync.sources.ldap.directory import LdapSettings
from usersync.sources.ldap.reader import LdapSource
from usersync.store.source_state import load_watermark

pytestmark = pytest.mark.samba
_ou_names = itertools.count()


class Area(str):
    """A test's own OU (the DN) and the prefix of its account names (sAMAccountName is unique domain-wide)."""

    tag: str

    def n(self, name: str) -> str:
        return f"{self.tag}{name}"


@pytest.fixture
def ou(samba_dc) -> Area:
    tag = f"t{next(_ou_names)}"
    area = Area(samba_dc.add_ou(tag))
    area.tag = tag
    return area


@pytest.fixture
def settings(samba_dc) -> LdapSettings:
    return LdapSettings("127.0.0.1", samba_dc.admin, samba_dc.admin_password, ca_certs_file=str(samba_dc.certs.ca))


@pytest.fixture
def engine(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    yield eng
    eng.dispose()


def rules_for(ou: str, **source):
    data = ad_rules(object_path=ou, filter="(&(objectCategory=person)(objectClass=user))", partitions=1, **source)
    data["fields"]["extension"] = {"policy": "import", "attribute": "ipPhone"}
    data["safety"] = {"max_delete_percent": 100}  # small OUs: one leaver is a large share
    return parse_rules(data)


class Runner:
    """Runs the DAG's steps against the DC, each run in a run folder of its own."""

    def __init__(self, rules, settings, engine, tmp_path):
        self.rules, self.settings, self.engine, self.tmp = rules, settings, engine, tmp_path
        self.runs = 0

    def __call__(self, engine=None, **kwargs) -> dict:
        self.runs += 1
        with LdapSource(self.rules.source, self.settings, self.rules.source_attributes()) as source:
            result = sync_once(self.rules, source, engine or self.engine, self.tmp / f"run{self.runs}", **kwargs)
        assert not result["verdict"].blocked, result["verdict"].message
        return result

    def rows(self, engine=None) -> dict:
        return table_rows(str((engine or self.engine).url))


def add_staff(dc, ou: Area, n: int, **attrs) -> dict[str, str]:
    """``n`` accounts in the test's OU: DNs by short name (u0, u1, …); their sAMAccountName is ``ou.n(short)``."""
    return {f"u{i}": dc.add_user(ou.n(f"u{i}"), f"Given{i}", f"Sur{i}", ou=ou, ipPhone=str(5000 + i),
                                 mail=f"{ou.n(f'u{i}')}@example.test", **attrs) for i in range(n)}


def test_rename_in_ad_keeps_the_user_and_the_report_says_rename(samba_dc, ou, settings, engine, tmp_path):
    dns = add_staff(samba_dc, ou, 3)
    run = Runner(rules_for(ou), settings, engine, tmp_path)
    run()
    before = run.rows()[ou.n("u1")]
    samba_dc.rename(dns["u1"], ou.n("u1.married"))
    result = run()
    rows = run.rows()
    assert ou.n("u1") not in rows and rows[ou.n("u1.married")]["id"] == before["id"]
    assert rows[ou.n("u1.married")]["username"] == ou.n("u1.married") and rows[ou.n("u1.married")]["external_id"] == before["external_id"]
    assert result["written"] == {"inserted": 0, "updated": 1, "deleted": 0, "disabled": 0}
    assert any(line.startswith(f"~ rename {ou.n('u1')} → {ou.n('u1.married')}") for line in change_lines(result["plan"].to_changeset(), 10))


def test_re_created_account_replaces_the_old_user_and_says_why(samba_dc, ou, settings, engine, tmp_path):
    dns = add_staff(samba_dc, ou, 2)
    run = Runner(rules_for(ou), settings, engine, tmp_path)
    run()
    old = run.rows()[ou.n("u0")]
    samba_dc.delete(dns["u0"])
    samba_dc.add_user(ou.n("u0"), "New", "Person", ou=ou, ipPhone="5100")
    result = run()
    new = run.rows()[ou.n("u0")]
    assert new["id"] != old["id"] and new["external_id"] != old["external_id"] and new["first_name"] == "New"
    (note,) = result["plan"].notes
    assert "re-created" in note and old["external_id"] in note and repr(ou.n("u0")) in note


def test_a_user_without_an_anchor_gets_it_filled_without_other_changes(samba_dc, ou, settings, engine, tmp_path):
    add_staff(samba_dc, ou, 2)
    no_anchor = rules_for(ou, external_id_attribute=None)
    Runner(no_anchor, settings, engine, tmp_path)()
    assert all(r["external_id"] is None for r in table_rows(str(engine.url)).values())
    result = Runner(rules_for(ou), settings, engine, tmp_path / "b")()
    updates = result["plan"].to_changeset().updates
    assert len(updates) == 2 and all(set(u.changes) == {"external_id"} for u in updates)


@pytest.mark.parametrize("policy", ["import", "exclude", "skip"])
def test_disabled_accounts_policies_end_to_end(samba_dc, ou, settings, engine, tmp_path, policy):
    dns = add_staff(samba_dc, ou, 3)
    run = Runner(rules_for(ou, disabled_accounts=policy), settings, engine, tmp_path)
    run()
    before = run.rows()[ou.n("u1")]
    samba_dc.modify(dns["u1"], userAccountControl=514, department="Moved while disabled")  # disabled in AD
    result = run()
    rows = run.rows()
    if policy == "import":
        assert rows[ou.n("u1")]["enabled"] is False and rows[ou.n("u1")]["department"] == "Moved while disabled"
    elif policy == "exclude":
        assert ou.n("u1") not in rows and result["written"]["deleted"] == 1
    else:
        assert rows[ou.n("u1")] == before and result["plan"].held == 1 and result["written"]["updated"] == 0
    samba_dc.modify(dns["u1"], userAccountControl=512)  # enabled again: synced as any account
    run()
    back = run.rows()[ou.n("u1")]
    assert back["enabled"] is True and back["department"] == "Moved while disabled"


def test_member_of_reads_nested_members_only_and_a_missing_group_is_an_error(samba_dc, ou, settings, engine, tmp_path):
    dns = add_staff(samba_dc, ou, 4)
    inner = samba_dc.add_group(ou.n("inner"), ou, [dns["u1"]])
    outer = samba_dc.add_group(ou.n("outer"), ou, [dns["u0"], inner])
    run = Runner(rules_for(ou, member_of=[outer]), settings, engine, tmp_path)
    run()
    assert set(run.rows()) == {ou.n("u0"), ou.n("u1")}  # u1 through the nested group
    samba_dc.set_member(inner, dns["u2"])
    samba_dc.set_member(inner, dns["u1"], present=False)
    run()
    assert set(run.rows()) == {ou.n("u0"), ou.n("u2")}  # joined the nested group: inserted; left it: deletion policy

    missing = Runner(rules_for(ou, member_of=[f"CN=No Such Group,{ou}"]), settings, engine, tmp_path / "m")
    with pytest.raises(SourceQueryError, match="member_of group 'CN=No Such Group.*does not exist"):
        missing()
    assert set(run.rows()) == {ou.n("u0"), ou.n("u2")}


def test_delta_reads_only_changes_and_keeps_the_watermark_only_after_apply(samba_dc, ou, settings, engine, tmp_path):
    dns = add_staff(samba_dc, ou, 30)
    run = Runner(rules_for(ou, delta={}), settings, engine, tmp_path)
    first = run()
    assert first["info"]["read"]["mode"] == "full" and "no watermark" in first["info"]["reading"]
    assert first["written"]["inserted"] == 30 and load_watermark(engine, "corp") is not None

    noop = run()
    assert noop["info"]["read"]["mode"] == "delta" and noop["entries"] == 0 and noop["plan"].writes == 0

    samba_dc.modify(dns["u3"], department="Changed")
    samba_dc.delete(dns["u4"])
    samba_dc.rename(dns["u5"], ou.n("u5.renamed"))
    samba_dc.move(dns["u6"], f"CN=Users,{BASE_DN}")  # out of scope
    samba_dc.add_user(ou.n("u99"), "Late", "Joiner", ou=ou, ipPhone="5999")
    mark = load_watermark(engine, "corp").read.get("usn")
    dry = run(dry_run=True)
    assert dry["info"]["read"]["mode"] == "delta" and load_watermark(engine, "corp").read.get("usn") == mark  # dry: kept
    result = run()
    assert result["info"]["read"]["mode"] == "delta"
    assert result["written"] == {"inserted": 1, "updated": 2, "deleted": 2, "disabled": 0}
    assert result["entries"] < 15  # the changed entries and their anchors, not the 30 users
    rows = run.rows()
    assert rows[ou.n("u3")]["department"] == "Changed" and ou.n("u4") not in rows and ou.n("u6") not in rows
    assert ou.n("u5.renamed") in rows and ou.n("u99") in rows and load_watermark(engine, "corp").read.get("usn") > mark

    forced = run(full_sync=True)
    assert forced["info"]["read"]["mode"] == "full" and "full_sync" in forced["info"]["reading"]
    assert forced["plan"].writes == 0

    changed_rules = Runner(rules_for(ou, delta={}, page_size=100), settings, engine, tmp_path / "r")()
    assert changed_rules["info"]["read"]["mode"] == "full" and "rules changed" in changed_rules["info"]["reading"]


def test_delta_run_ends_where_a_full_run_does_after_random_changes(samba_dc, ou, settings, engine, tmp_path):
    """Equivalence: after random adds, modifies, renames, disables, group moves and deletes, a delta run leaves
    the users table identical to a full run from the same state (both start from a copy of one table)."""
    rng = random.Random(8)
    dns = add_staff(samba_dc, ou, 25)
    group = samba_dc.add_group(ou.n("scope"), ou, list(dns.values())[:20])
    members = set(list(dns)[:20])
    other_ou = samba_dc.add_ou(ou.n("elsewhere"))
    rules = rules_for(ou, delta={}, member_of=[group], disabled_accounts="exclude")
    run = Runner(rules, settings, engine, tmp_path)
    run()
    modes, serial = [], itertools.count(100)
    for round_no in range(4):
        for _ in range(8):
            name = rng.choice(sorted(dns))
            op = rng.choice(["add", "modify", "rename", "disable", "enable", "delete", "move"]
                            + (["group"] if round_no % 2 else []))
            dn = dns[name]
            if op == "add":
                new = f"n{next(serial)}"
                dns[new] = samba_dc.add_user(ou.n(new), ou.n(new), "Joiner", ou=ou, ipPhone=str(6000 + len(dns)))
                if round_no % 2:  # joining the scope group changes the group: that round reads in full
                    samba_dc.set_member(group, dns[new])
                    members.add(new)
            elif op == "modify":
                samba_dc.modify(dn, department=f"Dept {rng.randint(1, 5)}", ipPhone=str(7000 + rng.randint(0, 500)))
            elif op == "rename":
                dns[f"{name}r"] = samba_dc.rename(dn, ou.n(f"{name}r"))
                del dns[name]
                if name in members:
                    members.symmetric_difference_update({name, f"{name}r"})
            elif op in ("disable", "enable"):
                samba_dc.modify(dn, userAccountControl=514 if op == "disable" else 512)
            elif op == "delete":
                samba_dc.delete(dn)
                del dns[name]
            elif op == "move":
                dns[name] = samba_dc.move(dn, other_ou)
            else:  # into or out of the scope group
                samba_dc.set_member(group, dn, present=name not in members)
                members.symmetric_difference_update({name})
        full_db = tmp_path / f"full{round_no}.db"
        shutil.copy(str(engine.url.database), full_db)
        full_engine = create_engine(f"sqlite:///{full_db}")
        delta = run()
        full = run(engine=full_engine, full_sync=True)
        modes.append(delta["info"]["read"]["mode"])
        assert users_snapshot(engine) == users_snapshot(full_engine), f"round {round_no}: delta and full differ"
        assert full["info"]["read"]["mode"] == "full"
        full_engine.dispose()
    assert modes[0] == modes[2] == "delta"  # rounds without group changes were really read as deltas
    assert modes[1] == modes[3] == "full"  # a scope group changed: read in full (see usersync.sources.ldap.ad_delta)


@pytest.mark.airflow
def test_delta_through_the_dag_with_full_sync_param_and_report_line(airflow_env, samba_dc, ou, tmp_path, monkeypatch):
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    data = rules_for(ou, delta={}).model_dump(mode="json", exclude_none=True)
    airflow_env.rules(data)
    dns = add_staff(samba_dc, ou, 5)

    def report() -> str:
        return sorted((tmp_path / "reports" / "corp").glob("*.txt"))[-1].read_text()

    assert airflow_env.run("user_sync__corp").state == "success"
    assert "read:     full (no watermark yet" in report() and len(table_rows(url)) == 5
    samba_dc.modify(dns["u2"], department="Via the DAG")
    assert airflow_env.run("user_sync__corp", {"dry_run": True}).state == "success"
    assert "read:     delta — entries changed since USN" in report() and "Via the DAG" in report()
    assert airflow_env.run("user_sync__corp").state == "success"  # the dry run kept the watermark: same delta
    assert "read:     delta" in report() and table_rows(url)[ou.n("u2")]["department"] == "Via the DAG"
    assert airflow_env.run("user_sync__corp", {"full_sync": True}).state == "success"
    assert "read:     full (asked for by the trigger parameter full_sync)" in report()

    engine = create_engine(url)
    mark = load_watermark(engine, "corp")
    for short in ("u0", "u1", "u3"):
        samba_dc.delete(dns[short])
    airflow_env.rules({**data, "safety": {"max_delete_percent": 20, "approve_blocked_runs": False}})
    assert airflow_env.run("user_sync__corp").state == "failed"  # 3 of 5 leaving: blocked by the guard
    assert "BLOCKED" in report() and load_watermark(engine, "corp") == mark  # a blocked run keeps the watermark
    engine.dispose()


@pytest.mark.airflow
def test_an_account_restored_from_its_tombstone_within_the_grace_gets_its_user_back(airflow_env, samba_dc, ou, tmp_path):
    """AD's Recycle Bin case on the real DC, through the DAG with delta reads: two accounts deleted by mistake are
    disabled; one is reanimated (same objectGUID) and comes back to the very same user with its application data;
    the other is deleted by the delta run after its 30 days, though nothing changed in the directory that day."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from tests.support.helpers import all_rows, changed_rows, report_of
    from usersync.core.users_table import users

    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    data = rules_for(ou, delta={}).model_dump(mode="json", exclude_none=True)
    airflow_env.rules({**data, "safety": {"deletion": "disable", "delete_after_days": 30, "max_delete_percent": 100}})
    dns = add_staff(samba_dc, ou, 4)
    guid = samba_dc.guid(dns["u1"])
    day0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)

    def run(days: int):
        dr = airflow_env.run("user_sync__corp", run_after=day0 + timedelta(days=days))
        assert dr.state == "success"
        return dr

    run(0)
    ids = {r["ad_username"]: r["id"] for r in all_rows(url).values()}
    engine = create_engine(url)
    with engine.begin() as conn:  # the application's data on the user
        conn.execute(update(users).where(users.c.id == ids[ou.n("u1")]).values(personal_address="Room 1",
                                                                                voicemail_enabled=True))
    engine.dispose()

    before = all_rows(url)
    samba_dc.delete(dns["u1"])
    samba_dc.delete(dns["u2"])
    report = report_of(run(1))
    assert "read:     delta" in report and "pending 2" in report
    after = all_rows(url)
    assert set(changed_rows(before, after)) == {ids[ou.n("u1")], ids[ou.n("u2")]}
    assert after[ids[ou.n("u1")]]["disabled_by_sync"] is True

    before = after
    samba_dc.restore(guid, dns["u1"], givenName="Given1", sn="Sur1", ipPhone="5001", userAccountControl=512,
                     mail=f"{ou.n('u1')}@example.test")
    assert samba_dc.guid(dns["u1"]) == guid
    report = report_of(run(10))
    assert "read:     delta" in report
    assert f"↺ {ou.n('u1')} (EXAMPLE\\{ou.n('u1')}): returned after 9 day(s)" in report
    after = all_rows(url)
    changes = changed_rows(before, after)
    assert set(changes) == {ids[ou.n("u1")]}
    assert set(changes[ids[ou.n("u1")]]) == {"enabled", "disabled_by_sync", "left_at", "updated_at"}
    back = after[ids[ou.n("u1")]]
    assert (back["enabled"], back["personal_address"], back["voicemail_enabled"]) == (True, "Room 1", True)
    assert back["external_id"].lower() == guid.lower()

    before = after
    report = report_of(run(31))  # nothing changed in the directory: the delta still sees u2's grace end
    assert "read:     delta" in report and "deleted 1" in report
    assert set(changed_rows(before, all_rows(url))) == {ids[ou.n("u2")]}
    assert ids[ou.n("u2")] not in all_rows(url)
