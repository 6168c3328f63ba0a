"""Against a real Samba 4 Active Directory DC: where AD's own behaviour matters (binds that need encryption,
the rootDSE's default naming context, binary objectGUIDs, built-in and disabled accounts, referrals)."""

from __future__ import annotations

import dataclasses

import pytest

from devtools.samba import STAFF_OU
from tests.support.helpers import table_rows
from tests.support.rules import ad_rules
from usersync.rules import parse_rules
from usersync.sources import SourceAuthError
from usersync.sources.ldap.directory import LdapDirectory, LdapSettings, SecurityMode
from usersync.sources.ldap.reader import LdapSource

pytestmark = pytest.mark.samba


@pytest.fixture
def settings(samba_dc) -> LdapSettings:
    return LdapSettings("127.0.0.1", samba_dc.admin, samba_dc.admin_password, ca_certs_file=str(samba_dc.certs.ca))


def _ad_rules(**source):
    data = ad_rules(filter="(&(objectCategory=person)(objectClass=user))", **source)
    data["source"]["external_id_attribute"] = "objectGUID"
    data["fields"]["extension"] = {"policy": "import", "attribute": "ipPhone"}
    return data


def test_plain_bind_is_refused_by_ad_and_says_what_to_do(settings):
    with pytest.raises(SourceAuthError, match="requires an encrypted connection.*SecureOnly .LDAPS. or StartTLS"):
        LdapDirectory.open(dataclasses.replace(settings, mode=SecurityMode.UNSECURE_ONLY))


def test_ldaps_and_starttls_bind_and_the_default_base_comes_from_the_rootdse(settings):
    for variant in (settings, dataclasses.replace(settings, start_tls=True)):
        with LdapDirectory.open(variant) as d:
            assert d.default_users_base() == "CN=Users,DC=example,DC=test"


def test_wrong_password(settings):
    with pytest.raises(SourceAuthError, match="invalid credentials"):
        LdapDirectory.open(dataclasses.replace(settings, password="Wrong-Pw-123"))


def test_search_from_the_domain_root_skips_referrals_and_reads_guids(settings):
    rules = parse_rules(_ad_rules(object_path="DC=example,DC=test"))
    with LdapSource(rules.source, settings, rules.source_attributes()) as src:
        records = list(src.records(src.check()))
    names = {r.get("sAMAccountName") for r in records}
    assert {"Administrator", "staff00", "staff11"} <= names  # built-ins in CN=Users and staff in OU=Staff
    guid = next(r for r in records if r.get("sAMAccountName") == "staff00").get("objectGUID")
    assert len(guid) == 38 and guid.startswith("{") and guid.endswith("}")


@pytest.mark.airflow
def test_real_ad_to_users_table_excluding_disabled_accounts(airflow_env, samba_dc, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    airflow_env.rules(_ad_rules(object_path=STAFF_OU, disabled_accounts="exclude"))
    dr = airflow_env.run("user_sync__corp")
    assert dr.state == "success"
    rows = table_rows(url)
    assert set(rows) == {f"staff{i:02d}" for i in range(12)} - {"staff03", "staff07"}
    row = rows["staff05"]
    assert row["extension"] == "4005" and row["domain"] == "EXAMPLE"
    assert row["external_id"].startswith("{") and len(row["external_id"]) == 38

    # blank object path: CN=Users of the real default naming context (built-in accounts; Guest/krbtgt disabled)
    airflow_env.rules(_ad_rules(name="builtin", disabled_accounts="exclude"))
    dr = airflow_env.run("user_sync__builtin")
    assert dr.state == "success"
    builtin = {r["ad_username"] for r in table_rows(url).values() if r["source"] == "builtin"}
    assert "Administrator" in builtin and not {"Guest", "krbtgt"} & builtin


def test_an_attribute_with_more_values_than_ads_range_size_is_read_whole(samba_dc, settings):
    """AD hands out at most MaxValRange (1,500) values of an attribute at a time (``name;range=0-1499``); ldap3's
    auto_range fetches the rest, over the lean entry decoder. 1,600 values come back, whole, both when the DC
    splits them and when the reader asks for a range itself."""
    ou = samba_dc.add_ou("Ranged")
    phones = [f"+39 02 {i:05d}" for i in range(1600)]
    samba_dc.add_user("ranged01", "Many", "Phones", ou=ou, otherTelephone=phones)
    rules = parse_rules(_ad_rules(object_path=ou))
    with LdapSource(rules.source, settings, [*rules.source_attributes(), "otherTelephone"]) as src:
        (record,) = list(src.records(src.check()))
    assert sorted(record.attributes["otherTelephone"]) == phones
    with LdapDirectory.open(settings) as directory:
        (ranged,) = list(directory.search(ou, "(sAMAccountName=ranged01)", ["otherTelephone;range=0-999"]))
    assert sorted(ranged.attributes["otherTelephone"]) == phones
    assert not any(";range=" in name for name in ranged.attributes), list(ranged.attributes)
