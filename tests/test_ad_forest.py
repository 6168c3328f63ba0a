"""The forest on a real Samba AD DC: the Global Catalog port (3269) read through a rules file with the Domain
worked out from each entry's DN; attributes the GC does not carry refused by name; an object path in another
domain answered in words; and a delta source whose next run lands on another DC of the domain reading in full."""

from __future__ import annotations

import pytest

from devtools.samba import BASE_DN, STAFF_OU
from tests.support.helpers import table_rows
from tests.support.rules import ad_rules
from usersync.core.run_folder import folder_name
from usersync.rules import parse_rules
from usersync.sources.errors import SourceQueryError
from usersync.sources.ldap.directory import LdapSettings
from usersync.sources.ldap.reader import LdapSource

pytestmark = pytest.mark.samba
GC_TLS_PORT = 3269


def _forest_rules(**source) -> dict:
    """Rules for the whole forest: the Domain from each entry's DN; only attributes the GC carries."""
    source = {"object_path": "", **source}
    data = ad_rules(filter="(&(objectCategory=person)(objectClass=user))", domain_attribute="dnDomain", **source)
    del data["source"]["domain"]
    data["source"]["external_id_attribute"] = "objectGUID"
    data["fields"] = {k: v for k, v in data["fields"].items() if k not in ("department", "extension")}
    data["fields"]["extension"] = {"policy": "import", "attribute": "ipPhone"}
    return data


def _settings(samba_dc, port: int = GC_TLS_PORT) -> LdapSettings:
    return LdapSettings("127.0.0.1", samba_dc.admin, samba_dc.admin_password, ldaps_port=port,
                        ca_certs_file=str(samba_dc.certs.ca))


def _report(tmp_path, dr) -> str:
    name = folder_name(dr.run_id)
    return next((tmp_path / "reports").rglob(f"*_{name}.txt")).read_text()


@pytest.mark.airflow
def test_the_global_catalog_reads_the_forest_with_the_domain_of_each_entry(airflow_env, samba_dc, tmp_path,
                                                                            monkeypatch):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra(ldaps_port=GC_TLS_PORT))
    airflow_env.users_db(url)
    airflow_env.rules(_forest_rules(disabled_accounts="exclude"))
    dr = airflow_env.run("user_sync__corp")
    text = _report(tmp_path, dr)
    assert dr.state == "success", text
    assert f"from:     ldaps://127.0.0.1:{GC_TLS_PORT}" in text
    rows = table_rows(url)
    staff = {f"staff{i:02d}" for i in range(12)} - {"staff03", "staff07"}
    assert staff <= set(rows) and "Administrator" in rows  # OU=Staff and CN=Users: read from the forest root
    # EXAMPLE: the NetBIOS name from the partitions container, not the DN's "example"
    assert {r["domain"] for r in rows.values()} == {"EXAMPLE"}
    assert rows["staff05"]["extension"] == "4005"


def test_the_global_catalog_refuses_attributes_it_does_not_carry(samba_dc):
    data = _forest_rules()
    data["fields"]["department"] = {"policy": "import", "attribute": "department"}  # not in Samba's GC set
    data["fields"]["mobile"] = {"policy": "import", "attribute": "mobile"}
    rules = parse_rules(data)
    with LdapSource(rules.source, _settings(samba_dc), rules.source_attributes()) as source, \
            pytest.raises(SourceQueryError) as refused:
        source.check()
    message = str(refused.value)
    assert "does not carry department, mobile" in message and "partial attribute set" in message
    assert "ipPhone" not in message  # in the set: carried


def test_an_object_path_in_another_domain_says_the_global_catalog_reads_the_forest(samba_dc):
    rules = parse_rules(_forest_rules(object_path="OU=Staff,DC=emea,DC=other,DC=test"))
    with LdapSource(rules.source, _settings(samba_dc, port=636), rules.source_attributes()) as source, \
            pytest.raises(SourceQueryError) as refused:
        source.records(source.check()).__next__()
    message = str(refused.value)
    assert f"outside this domain controller's domain ({BASE_DN})" in message
    assert "Global Catalog (ldaps_port 3269" in message


def test_dn_domain_on_a_domain_controller_port_too(samba_dc):
    rules = parse_rules(_forest_rules(object_path=STAFF_OU))
    with LdapSource(rules.source, _settings(samba_dc, port=636), rules.source_attributes()) as source:
        records = list(source.records(source.check()))
    assert records and {r.get("dnDomain") for r in records} == {"EXAMPLE"}


@pytest.mark.airflow
def test_delta_after_a_switch_to_another_dc_reads_in_full_and_says_so(airflow_env, samba_dc, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.connection("corp_ldap", **samba_dc.connection_extra())
    airflow_env.users_db(url)
    data = ad_rules(object_path=STAFF_OU, filter="(&(objectCategory=person)(objectClass=user))",
                    delta={"full_every_days": 7})
    data["source"]["external_id_attribute"] = "objectGUID"
    data["fields"]["extension"] = {"policy": "import", "attribute": "ipPhone"}
    airflow_env.rules(data)
    assert airflow_env.run("user_sync__corp").state == "success"
    samba_dc.modify(f"CN=Given4 Surname4,{STAFF_OU}", department="Delta")
    text = _report(tmp_path, dr := airflow_env.run("user_sync__corp"))
    assert dr.state == "success" and "read:     delta" in text, text
    before = table_rows(url)

    server = samba_dc.replace_with_restored_dc("DC2")  # DC1 is gone; the same address now answers as DC2
    samba_dc.modify(f"CN=Given5 Surname5,{STAFF_OU}", department="After the switch")
    text = _report(tmp_path, dr := airflow_env.run("user_sync__corp"))
    assert dr.state == "success", text
    assert f"read:     full (another domain controller ({server}; the watermark is of CN=NTDS Settings,CN=DC1," in text
    rows = table_rows(url)
    assert rows["staff05"]["department"] == "After the switch" and rows["staff04"]["department"] == "Delta"
    assert {k: r["external_id"] for k, r in rows.items()} == {k: r["external_id"] for k, r in before.items()}
    text = _report(tmp_path, dr := airflow_env.run("user_sync__corp"))
    assert "read:     delta" in text, text  # the full read stored DC2's watermark
