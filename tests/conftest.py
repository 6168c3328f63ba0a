"""Shared fixtures: real slapd, real PostgreSQL, a private Airflow home — all on loopback, all thrown away.

Airflow reads its configuration when first imported, so the environment is set here, before any test
module can import it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # also tests.support.repo.REPO, for test modules
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="usersync-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["USERSYNC_HOME"] = str(_AIRFLOW_HOME / "usersync")
os.environ.pop("USERSYNC_RULES_DIR", None)
for _name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402
import yaml  # noqa: E402

from devtools.postgres import PostgresServer  # noqa: E402
from devtools.slapd import SlapdServer  # noqa: E402
from tests.support.mail import Inbox  # noqa: E402
from tests.support.rules import ad_rules  # noqa: E402


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """A read-only shared directory with 1,200 users: more than AD's 1000-entry page cap."""
    server = SlapdServer(tmp_path_factory.mktemp("slapd-shared"), users=1200).start()
    yield server
    server.stop()


@pytest.fixture
def make_slapd(tmp_path_factory):
    """A fresh directory per test, for tests that change entries."""
    servers = []

    def start(users: int = 20) -> SlapdServer:
        server = SlapdServer(tmp_path_factory.mktemp("slapd"), users=users).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres, request):
    """A fresh, empty database for this test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return postgres.create_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def users_url(request, tmp_path):
    """The URL of an empty users database on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """The users database on both supported backends."""
    from sqlalchemy import create_engine

    from usersync.store.schema_version import ensure_schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'users.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = create_engine(url)
    ensure_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in the private AIRFLOW_HOME), created once per session."""
    from airflow.utils import db

    db.resetdb()
    yield


@pytest.fixture
def airflow_env(airflow_db, monkeypatch, tmp_path):
    """A rules folder for this test and helpers to define connections, write rules and run a DAG."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    monkeypatch.setenv("USERSYNC_RULES_DIR", str(rules_dir))
    return AirflowEnv(monkeypatch, rules_dir)


class AirflowEnv:
    def __init__(self, monkeypatch, rules_dir: Path):
        self.monkeypatch = monkeypatch
        self.rules_dir = rules_dir

    def connection(self, conn_id: str, **fields) -> None:
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))

    def users_db(self, url: str, conn_id: str = "usersync_target") -> None:
        from sqlalchemy import make_url

        u = make_url(url)
        if u.get_backend_name() == "sqlite":
            self.connection(conn_id, conn_type="sqlite", host=u.database)
        else:
            self.connection(conn_id, conn_type="postgres", host=u.host, port=u.port, login=u.username,
                            schema=u.database, password=u.password or "")

    def rules(self, data: dict, filename: str | None = None) -> Path:
        path = self.rules_dir / (filename or f"{data['source']['name']}.yaml")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def dagbag(self):
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(REPO / "dags"))

    def run(self, dag_id: str, conf: dict | None = None, run_after=None, scheduled: bool = False):
        """One ``dag.test()`` run; ``run_after``: the run's time (a daily run's due time), default now.
        ``scheduled``: the run is recorded in the metadata database as one the schedule started (``dag.test()``
        records a manual run), as the scheduler would create it at ``run_after``."""
        from airflow.models import dagrun

        dag = self.dagbag().get_dag(dag_id)
        assert dag is not None, f"DAG {dag_id} not found"
        create = dagrun.get_or_create_dagrun
        if scheduled:
            dagrun.get_or_create_dagrun = functools.partial(_scheduled_run, create)
        try:
            if run_after is None:
                return dag.test(run_conf=conf or {})
            return dag.test(run_conf=conf or {}, run_after=run_after, logical_date=run_after)
        finally:
            dagrun.get_or_create_dagrun = create


def _scheduled_run(create, **kwargs):
    """``dag.test()``'s run, its run type made ``scheduled`` in the metadata database before any task runs."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from sqlalchemy import update

    run = create(**kwargs)
    session = kwargs["session"]
    session.execute(update(DagRun).where(DagRun.id == run.id).values(run_type=DagRunType.SCHEDULED))
    session.commit()
    session.refresh(run)
    return run


@pytest.fixture
def rules_data():
    return ad_rules


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on loopback; ``.messages`` holds what it received."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from devtools.netutil import free_port

    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), auth_require_tls=False,
        authenticator=lambda server, session, envelope, mechanism, auth_data: AuthResult(success=True),
    )
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    from devtools.mariadb import MariaDbServer

    server = MariaDbServer(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture
def freepbx_db(mariadb, request):
    """A fresh database ``asterisk_<test>`` holding a FreePBX userman_users table with 25 users."""
    from devtools.freepbx import load_userman

    name = "asterisk_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:40].lower()
    conn = mariadb.connect()
    with conn.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS `{name}`")
        c.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.select_db(name)
    load_userman(conn, 25)
    yield conn, name
    conn.close()


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory):
    """A real Samba AD DC (fixed ports 389/636) with 12 staff users in OU=Staff, two of them disabled."""
    from devtools.samba import SambaDc

    dc = SambaDc(tmp_path_factory.mktemp("samba")).start()
    for i in range(12):
        dc.add_user(f"staff{i:02d}", f"Given{i}", f"Surname{i}", disabled=i in (3, 7),
                    mail=f"staff{i}@example.test", department="Operations", ipPhone=str(4000 + i))
    yield dc
    dc.stop()


#: fixtures that start a real server (or a whole Airflow); a test using one belongs to the ``servers`` lane
SERVER_FIXTURES = frozenset({
    "slapd", "make_slapd", "postgres", "pg_url", "airflow_db", "airflow_env", "smtp_server", "mariadb",
    "freepbx_db", "samba_dc", "bad_server", "hostile_directory", "users_pg",
})
#: marked groups that need servers or take minutes whatever their fixtures
SLOW_MARKERS = frozenset({"airflow", "samba", "distributed", "browser", "bench", "faults", "concurrency",
                          "properties", "compose"})


def pytest_collection_modifyitems(config, items):
    """Mark every test that starts servers (directly or through its fixtures) ``servers``, so the fast lane
    (``make check``: ``-m "not servers"``) runs the rest in seconds."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "postgresql" in {params.get("users_url"), params.get("engine")}
        if on_postgres or fixtures & SERVER_FIXTURES or {m.name for m in item.iter_markers()} & SLOW_MARKERS:
            item.add_marker(pytest.mark.servers)


@pytest.fixture
def scim(airflow_env, tmp_path, monkeypatch):
    """A SCIM provider (scim2-server on a loopback port, a fresh store), its connection ``scim_conn`` and an SQLite
    users table; yields (server, users-table URL). Reports go under tmp_path/reports."""
    from tests.support.scim_server import ScimServer

    monkeypatch.setenv("USERSYNC_REPORTS_DIR", str(tmp_path / "reports"))
    server = ScimServer().start()
    try:
        url = f"sqlite:///{tmp_path / 'users.db'}"
        airflow_env.users_db(url)
        airflow_env.connection("scim_conn", conn_type="usersync_scim", host=server.url, password="any-token",
                               extra={"insecure_http": True})  # scim2-server serves plain HTTP on loopback
        yield server, url
    finally:
        server.stop()
