"""Microsoft Entra ID through the DAG, against the Graph test server (tests/graph_server.py, HTTPS with a test CA):
first import, changes, delta with removals, throttling, an expired delta link, a wrong secret; and the Graph
client's own rules (page size, token renewal, bounded retries, Graph's error text)."""

from __future__ import annotations

import contextlib
from datetime import UTC
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.tlscerts import make_certs
from tests.support.graph_server import GraphServer, Tenant, graph_user, guest_user
from tests.support.helpers import table_rows
from usersync.core.run_folder import folder_name
from usersync.sources.entra.graph_client import GraphClient, GraphError, GraphSettings
from usersync.sources.errors import SourceAuthError, SourceQueryError

USERS = 40


@pytest.fixture
def graph(tmp_path):
    certs = make_certs(tmp_path / "certs")
    tenant = Tenant(token_lifetime=3600)
    for i in range(USERS):
        tenant.add(graph_user(i, accountEnabled=i != 7))
    server = GraphServer(tenant, str(certs.cert), str(certs.key)).start()
    server.ca = str(certs.ca)
    yield server
    server.stop()


def _connection(graph, secret: str | None = None) -> dict:
    t = graph.tenant
    return {"conn_type": "usersync_entra", "host": t.tenant_id, "login": t.client_id,
            "password": secret if secret is not None else t.client_secret,
            "extra": {"authority_host": graph.base_url, "graph_url": graph.base_url, "ca_certs_file": graph.ca,
                      "max_wait": 5, "reread_waits": "0.2,0.2"}}


def _rules(**source) -> dict:
    return {
        "source": {"name": "entra", "type": "entra_id", "conn_id": "usersync_entra", "domain": "CONTOSO",
                   "page_size": 15, **source},
        "schedule": {"auto": False},
        "run": {"retries": 0},
        "safety": {"max_delete_percent": 100, "approve_blocked_runs": False},
        "fields": {
            "username": {"policy": "import", "attribute": "upnLocalPart", "transforms": ["lower"]},
            "first_name": {"policy": "import", "attribute": "givenName"},
            "last_name": {"policy": "import", "attribute": "surname"},
            "email": {"policy": "import", "attribute": "mail", "transforms": ["lower"]},
            "extension": {"policy": "import", "attribute": "extensionAttribute1"},
            "mobile": {"policy": "import", "attribute": "mobilePhone"},
            "enabled": {"policy": "import", "attribute": "accountEnabled", "transforms": ["flag"]},
        },
    }


@contextlib.contextmanager
def graph_source(airflow_env, tmp_path, tenant, **source):
    """A Graph test server for ``tenant``, its connection, a SQLite users table and the Entra rules (``source``
    settings added), for tests that build their own tenant: yields (server, users-table URL)."""
    certs = make_certs(tmp_path / "certs")
    server = GraphServer(tenant, str(certs.cert), str(certs.key)).start()
    server.ca = str(certs.ca)
    try:
        url = f"sqlite:///{tmp_path / 'users.db'}"
        airflow_env.users_db(url)
        airflow_env.connection("usersync_entra", **_connection(server))
        airflow_env.rules(_rules(**source))
        yield server, url
    finally:
        server.stop()


@pytest.fixture
def entra(airflow_env, graph, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    airflow_env.users_db(url)
    airflow_env.connection("usersync_entra", **_connection(graph))

    class Env:
        pass

    env = Env()
    env.graph, env.tenant, env.url, env.airflow = graph, graph.tenant, url, airflow_env
    env.rules = lambda **source: airflow_env.rules(_rules(**source))
    env.run = lambda **conf: airflow_env.run("user_sync__entra", conf)
    # the report file of the latest run (a failed run's report task fails, so XCom holds none)
    env.report = lambda dr: next((tmp_path / "reports" / "entra").glob(
        f"*_{folder_name(dr.run_id)}.txt")).read_text()
    return env


def _queries(tenant, path: str) -> list[dict]:
    return [{k: v[0] for k, v in parse_qs(urlsplit(p).query).items()}
            for method, p in tenant.requests if method == "GET" and urlsplit(p).path == path]


pytestmark = pytest.mark.airflow


def test_first_import_reads_only_the_selected_properties_in_pages(entra):
    entra.rules()
    dr = entra.run()
    assert dr.state == "success", entra.report(dr)
    rows = table_rows(entra.url)
    assert len(rows) == USERS
    user = rows["user000003"]
    assert user["domain"] == "CONTOSO" and user["ad_username"] == "user000003"
    assert user["external_id"] == entra.tenant.users[user["external_id"]]["id"]  # the object id is the anchor
    assert user["extension"] == "11003" and user["first_name"] == "Luca" and user["enabled"] is True
    assert rows["user000007"]["enabled"] is False  # accountEnabled false, disabled_accounts: import
    (first, *more) = _queries(entra.tenant, "/v1.0/users")[1:]  # [0] is check_source's probe
    assert first["$top"] == "15" and set(first["$select"].split(",")) == {
        "id", "userPrincipalName", "givenName", "surname", "mail", "onPremisesExtensionAttributes", "mobilePhone",
        "accountEnabled"}
    assert len(more) == 2 and all("$skiptoken" in q for q in more)  # 40 users in pages of 15, by nextLink
    assert "read:" not in entra.report(dr)  # no delta configured: always a full read


def test_delta_reads_only_changes_and_removals_and_keeps_renamed_users(entra):
    entra.rules(delta={"full_every_days": 7})
    dr = entra.run()
    assert dr.state == "success" and "read:     full (no watermark yet" in entra.report(dr)
    ids = {u["userPrincipalName"].split("@")[0]: i for i, u in entra.tenant.users.items()}
    entra.tenant.update(ids["user000001"], givenName="Zed")
    entra.tenant.update(ids["user000002"], userPrincipalName="renamed000002@example.onmicrosoft.com")
    entra.tenant.delete(ids["user000003"])
    entra.tenant.add(graph_user(500))
    entra.tenant.requests.clear()

    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert "read:     delta — changes since the last run's delta link" in text
    rows = table_rows(entra.url)
    assert rows["user000001"]["first_name"] == "Zed" and rows["user000001"]["last_name"] == "Bianchi"  # whole user
    assert "renamed000002" in rows and "user000002" not in rows
    assert rows["renamed000002"]["external_id"] == ids["user000002"]  # same row, same anchor
    assert "user000003" not in rows and "user000500" in rows
    assert "inserted 1, updated 2, deleted 1" in text
    assert [q for q in _queries(entra.tenant, "/v1.0/users/delta") if "$deltatoken" in q]
    refetch = [q for q in _queries(entra.tenant, "/v1.0/users") if "$filter" in q]
    assert refetch and refetch[0]["$filter"].startswith("id in (")  # updated users read whole, by id
    full_reads = [q for q in _queries(entra.tenant, "/v1.0/users/delta") if "$deltatoken" not in q and "$skiptoken" not in q]
    assert full_reads == []


def test_accounts_disabled_in_entra_leave_under_exclude_also_by_delta(entra):
    entra.rules(delta={"full_every_days": 7}, disabled_accounts="exclude")
    assert entra.run().state == "success"
    rows = table_rows(entra.url)
    assert len(rows) == USERS - 1 and "user000007" not in rows  # accountEnabled false: not imported
    ids = {u["userPrincipalName"].split("@")[0]: i for i, u in entra.tenant.users.items()}
    entra.tenant.update(ids["user000008"], accountEnabled=False)
    dr = entra.run()
    assert "read:     delta" in entra.report(dr) and "user000008" not in table_rows(entra.url)
    assert "- delete user000008" in entra.report(dr)


def test_throttling_waits_as_graph_says_and_the_run_succeeds(entra):
    entra.rules()
    entra.tenant.throttle = [(429, 1), (503, 1), (429, 1)]
    dr = entra.run()
    assert dr.state == "success", entra.report(dr)
    assert entra.tenant.throttle == [] and len(table_rows(entra.url)) == USERS


def test_an_expired_delta_link_falls_back_to_a_full_read_with_the_reason(entra):
    entra.rules(delta={"full_every_days": 7})
    assert entra.run().state == "success"
    ids = {u["userPrincipalName"].split("@")[0]: i for i, u in entra.tenant.users.items()}
    entra.tenant.delete(ids["user000004"])
    entra.tenant.expire_delta_tokens()  # as after seven days
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert ("read:     full (Graph asked for a full read (410 syncStateNotFound): the stored delta link can no longer "
            "be followed)") in text
    assert "user000004" not in table_rows(entra.url)  # a full read: who is absent has left
    entra.tenant.update(ids["user000005"], department="Board")
    dr = entra.run()
    assert "read:     delta" in entra.report(dr), entra.report(dr)  # the full read stored a fresh link


def test_a_wrong_secret_fails_at_check_source_naming_the_cause_not_the_secret(entra, graph):
    entra.rules()
    entra.airflow.connection("usersync_entra", **_connection(graph, secret="Wrong-Secret-123"))
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "failed"
    assert "failed at step: check_source" in text and "AADSTS7000215" in text and "invalid_client" in text
    assert "Wrong-Secret-123" not in text and entra.tenant.client_secret not in text
    assert table_rows(entra.url) == {}


def test_group_scope_reads_transitive_members_only(entra):
    ids = list(entra.tenant.users)
    entra.tenant.groups.update({"g-top": [ids[0], ids[1], "g-nested"], "g-nested": [ids[2], "g-top"]})
    entra.rules(group_id="g-top", filter="accountEnabled eq true")
    dr = entra.run()
    assert dr.state == "success", entra.report(dr)
    assert sorted(table_rows(entra.url)) == ["user000000", "user000001", "user000002"]
    entra.rules(group_id="no-such-group")
    dr = entra.run()
    assert dr.state == "failed" and "Request_ResourceNotFound" in entra.report(dr)


def _certificate(directory) -> tuple[str, str, str]:
    """A self-signed certificate as uploaded to an app registration: (certificate PEM, key file, SHA-1 thumbprint)."""
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "usersync app")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2)).sign(key, hashes.SHA256()))
    key_file = directory / "app.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(), str(key_file),
            cert.fingerprint(hashes.SHA1()).hex().upper())  # noqa: S303 - the thumbprint Entra shows is SHA-1


def test_a_certificate_credential_instead_of_a_secret(entra, graph, tmp_path):
    pem, key_file, thumbprint = _certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other_pem, _other_key, _ = _certificate(tmp_path / "other")
    entra.tenant.certificate_pem = pem
    conn = _connection(graph, secret="")
    conn["extra"].update(certificate_key_file=key_file, certificate_thumbprint=thumbprint)
    entra.airflow.connection("usersync_entra", **conn)
    entra.rules()
    dr = entra.run()
    assert dr.state == "success", entra.report(dr)
    assert len(table_rows(entra.url)) == USERS
    entra.tenant.certificate_pem = other_pem  # the app's certificate was replaced: our key no longer signs for it
    dr = entra.run()
    assert dr.state == "failed" and "AADSTS700027" in entra.report(dr)


def test_the_connection_test_button_says_whether_graph_answers(airflow_env, graph):
    from usersync_airflow.hooks.entra import EntraHook

    airflow_env.connection("usersync_entra", **_connection(graph))
    ok, message = EntraHook("usersync_entra").test_connection()
    assert ok and graph.tenant.tenant_id in message
    airflow_env.connection("usersync_entra", **_connection(graph, secret="nope"))
    ok, message = EntraHook("usersync_entra").test_connection()
    assert not ok and "AADSTS7000215" in message and "nope" not in message


# --- Graph's documented quirks ------------------------------------------------------------------------------


def _ids(tenant) -> dict[str, str]:
    return {u["userPrincipalName"].split("@")[0]: i for i, u in tenant.users.items()}


def _first_delta_run(entra) -> dict[str, str]:
    """A delta source's first (full) run, done; the users' ids by name."""
    entra.rules(delta={"full_every_days": 7})
    assert entra.run().state == "success"
    return _ids(entra.tenant)


def test_a_user_listed_once_per_change_in_a_delta_round_is_updated_with_its_last_state(entra):
    ids = _first_delta_run(entra)
    entra.tenant.update(ids["user000010"], department="Board")
    entra.tenant.update(ids["user000010"], mobilePhone="+39 333 7654321")
    entra.tenant.update(ids["user000010"], givenName="Zoe")
    entra.tenant.requests.clear()
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    rounds = [q for q in _queries(entra.tenant, "/v1.0/users/delta") if "$deltatoken" in q]
    assert rounds  # the round listed user000010 three times (the server lists each change)
    user = table_rows(entra.url)["user000010"]
    assert user["first_name"] == "Zoe" and user["mobile"] == "+39 333 7654321"
    assert "duplicate key" not in text and "fix them in the source" not in text
    assert "updated 1" in text
    refetch = [q["$filter"] for q in _queries(entra.tenant, "/v1.0/users") if "$filter" in q]
    assert refetch == [f"id in ('{ids['user000010']}')"]  # read again once, not once per listing


@pytest.mark.parametrize("delta", [False, True], ids=["users", "delta-first-round"])
def test_a_user_changed_while_the_read_is_paged_is_imported_in_its_last_state(entra, delta):
    entra.rules(**({"delta": {"full_every_days": 7}} if delta else {}))
    entra.tenant.delta_page_size = 15
    ids = _ids(entra.tenant)
    changed = []

    def change_after_second_page(page: int) -> None:
        if page == 2 and not changed:  # user000001 was on page 1: Graph lists it again, changed, on page 3
            changed.append(page)
            entra.tenant.update(ids["user000001"], givenName="Zed")

    entra.tenant.after_page = change_after_second_page
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert changed  # the change happened while the read was paged
    rows = table_rows(entra.url)
    assert len(rows) == USERS and rows["user000001"]["first_name"] == "Zed"
    assert "duplicate key" not in text and "inserted 40" in text


@pytest.mark.parametrize("status", [400, 410])
def test_resync_required_with_any_status_falls_back_to_a_full_read(entra, status):
    ids = _first_delta_run(entra)
    entra.tenant.delete(ids["user000004"])
    entra.tenant.resync = [status]
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert f"read:     full (Graph asked for a full read ({status} resyncRequired)" in text
    assert "user000004" not in table_rows(entra.url) and "deleted 1" in text
    assert entra.tenant.resync == []


def test_a_changed_user_a_replica_does_not_show_yet_is_asked_for_again(entra):
    ids = _first_delta_run(entra)
    entra.tenant.update(ids["user000012"], givenName="Zara")
    entra.tenant.lagging[ids["user000012"]] = 1  # the first read by id misses it
    entra.tenant.requests.clear()
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert table_rows(entra.url)["user000012"]["first_name"] == "Zara"
    assert len([q for q in _queries(entra.tenant, "/v1.0/users") if "$filter" in q]) == 2  # asked again
    assert "not advanced" not in text


def test_a_changed_user_still_missing_keeps_the_old_delta_link_and_the_report_says_so(entra):
    ids = _first_delta_run(entra)
    entra.tenant.update(ids["user000012"], givenName="Zara")
    entra.tenant.update(ids["user000013"], givenName="Zeno")
    entra.tenant.lagging[ids["user000012"]] = 10  # longer than our waits
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    assert "named 1 changed user(s) it then did not return" in text and ids["user000012"] in text
    assert "The delta link was not advanced" in text
    rows = table_rows(entra.url)
    assert rows["user000013"]["first_name"] == "Zeno" and rows["user000012"]["first_name"] != "Zara"
    entra.tenant.lagging.clear()  # replicated now: the next run reads the same changes again
    dr = entra.run()
    text = entra.report(dr)
    assert "read:     delta" in text and table_rows(entra.url)["user000012"]["first_name"] == "Zara"


def test_the_token_goes_only_to_the_configured_graph_host(entra, graph, tmp_path):
    certs = make_certs(tmp_path / "other-certs")
    elsewhere = GraphServer(Tenant(), str(certs.cert), str(certs.key)).start()
    try:
        entra.rules()
        entra.tenant.link_host = elsewhere.base_url  # a next link to another host (same address, other port)
        dr = entra.run()
        text = entra.report(dr)
        assert dr.state == "failed"
        port = elsewhere.server_address[1]
        assert f"handed out a link to https://127.0.0.1:{port}, not to the configured Graph host" in text
        assert elsewhere.tenant.requests == []  # the token never left for it
        client = _client(graph)  # a stored delta link naming another host is refused the same way
        with pytest.raises(SourceQueryError, match=f"127.0.0.1:{port}"):
            client.get(f"{elsewhere.base_url}/v1.0/users/delta?$deltatoken=x")
        assert elsewhere.tenant.requests == []
    finally:
        elsewhere.stop()


def test_guests_are_imported_skipped_or_excluded_as_the_rules_say_also_by_delta(entra):
    for i in (900, 901):
        entra.tenant.add(guest_user(i))
    entra.rules(delta={"full_every_days": 7})
    dr = entra.run()
    assert dr.state == "success", entra.report(dr)
    guests = {k for k in table_rows(entra.url) if "#EXT#" in k}
    assert guests == {"guest0900_gmail.com#EXT#", "guest0901_gmail.com#EXT#"}  # import: like members

    entra.rules(delta={"full_every_days": 7}, guests="skip")
    guest = next(i for i, u in entra.tenant.users.items() if u["userType"] == "Guest")
    entra.tenant.update(guest, givenName="Changed")
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "success", text
    rows = table_rows(entra.url)
    assert {k for k in rows if "#EXT#" in k} == guests  # left exactly as they were
    assert all(rows[k]["first_name"] != "Changed" for k in guests)

    entra.rules(delta={"full_every_days": 7}, guests="exclude")
    dr = entra.run()
    assert dr.state == "success" and not {k for k in table_rows(entra.url) if "#EXT#" in k}, entra.report(dr)
    member = _ids(entra.tenant)["user000020"]
    entra.tenant.update(member, userType="Guest")  # a member turned guest: gone by delta too
    dr = entra.run()
    text = entra.report(dr)
    assert "read:     delta" in text and "- delete user000020" in text and "user000020" not in table_rows(entra.url)


def test_a_full_read_after_a_resync_that_finds_nobody_says_so_in_graph_terms(entra):
    entra.rules(delta={"full_every_days": 7})
    assert entra.run().state == "success"
    assert all("$top" not in q for q in _queries(entra.tenant, "/v1.0/users/delta"))  # Graph ignores it there
    for user_id in list(entra.tenant.users):
        entra.tenant.delete(user_id)
    entra.tenant.resync = [400]
    dr = entra.run()
    text = entra.report(dr)
    assert dr.state == "failed"
    assert "read:     full (Graph asked for a full read (400 resyncRequired)" in text
    assert "returned no users reading in full" in text and "wrong group_id or $filter" in text
    assert "object path" not in text and "empty file" not in text
    assert len(table_rows(entra.url)) == USERS  # nobody deleted


# --- the client alone ----------------------------------------------------------------------------------------


def _client(graph, **overrides) -> GraphClient:
    t = graph.tenant
    settings = GraphSettings(t.tenant_id, t.client_id, t.client_secret, authority_host=graph.base_url,
                             graph_url=graph.base_url, ca_certs_file=graph.ca, **overrides)
    return GraphClient(settings, sleep=lambda s: None)


def test_the_token_is_cached_renewed_once_on_401_and_never_logged(graph):
    client = _client(graph)
    client.get("v1.0/users", {"$top": "1"})
    client.get("v1.0/users", {"$top": "1"})
    assert graph.tenant.tokens_issued == 1  # cached until it expires
    graph.tenant.expire_tokens()
    assert client.get("v1.0/users", {"$top": "2"})["value"]
    assert graph.tenant.tokens_issued == 2
    assert graph.tenant.client_secret not in repr(client.settings)


def test_retries_are_bounded_and_graph_errors_keep_code_and_message(graph):
    client = _client(graph, max_retries=2, max_wait=5)
    graph.tenant.throttle = [(429, 30)] * 3
    with pytest.raises(GraphError, match="429 TooManyRequests: Too many requests"):
        client.get("v1.0/users")
    assert client.http.waited == 10  # two retries, each Retry-After of 30 s capped at max_wait 5 s
    with pytest.raises(GraphError, match="400 Request_UnsupportedQuery: Invalid page size specified: '1000'"):
        client.get("v1.0/users", {"$top": "1000"})


def test_garbage_and_refused_credentials_are_named(graph):
    client = _client(graph)
    graph.tenant.garbage = 1
    with pytest.raises(SourceQueryError, match="not JSON .*text/html.*proxy or gateway"):
        client.get("v1.0/users")
    t = graph.tenant
    wrong = GraphClient(GraphSettings(t.tenant_id, "not-the-app", t.client_secret, authority_host=graph.base_url,
                                      graph_url=graph.base_url, ca_certs_file=graph.ca))
    with pytest.raises(SourceAuthError, match="AADSTS700016"):
        wrong.get("v1.0/users")
