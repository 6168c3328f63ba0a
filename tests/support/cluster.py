"""A whole deployment on loopback for the distributed and browser tests: a directory (slapd), a PostgreSQL server
(Airflow's metadata database and the users databases), Redis, an SMTP server and Airflow's distributed
topology (``devtools.airflow_cluster``) with the rules files below. Run data on one folder all workers share."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from bench.dag_runner import admin_env
from devtools.airflow_cluster import AirflowCluster
from devtools.redis import RedisServer
from devtools.slapd import SlapdServer
from tests.support.mail import Inbox, smtp_connection
from tests.support.repo import REPO
from tests.support.rules import ad_rules

ADMINS = ["it-admins@example.test"]
USERS = 30


CONSUMER_DAG = "provision_phones"
#: what docs/operating.md shows: a DAG that runs when a sync wrote to the users table
CONSUMER_SOURCE = f"""
from airflow.sdk import dag, task

from usersync_airflow.dag.assets import users_asset


@dag(dag_id="{CONSUMER_DAG}", schedule=[users_asset("corp_target")], catchup=False)
def provision_phones():
    @task
    def provision(triggering_asset_events=None):
        (event,) = triggering_asset_events[users_asset("corp_target")]
        return event.extra


    provision()


provision_phones()
"""


#: who signs in besides admin: a second approver, and a user who may trigger runs but approves nothing
USERS_BESIDES_ADMIN = {"alice": "admin", "bob": "user", "carol": "viewer"}  # carol may read, not trigger
APPROVERS = ["admin", "alice"]


def sync_rules(name: str, timeout_hours: float = 24) -> dict:
    data = ad_rules(name, partitions=2)
    data["target"] = {"conn_id": f"{name}_target"}
    data["safety"] = {"max_delete_percent": 20, "approval_timeout_hours": timeout_hours}
    data["approvals"] = {"approvers": APPROVERS}  # four eyes: never the person who triggered the run
    data["alarms"] = {"to": ADMINS}
    data["notify"] = [{"type": "slack", "conn_id": "ops_slack"}, {"type": "teams", "conn_id": "ops_teams"}]
    return data


def write_back_rules(name: str) -> dict:
    """A source whose fax numbers the application assigns and writes back (the service account may write
    facsimileTelephoneNumber only); more than two values at once wait for approval."""
    data = sync_rules(name)
    data["fields"]["fax_number"] = "keep"
    data["write_back"] = {"attributes": {"facsimileTelephoneNumber": "fax_number"}, "max_writes": 2}
    return data


class Stack:
    """``Stack(tmp, postgres, workers)`` as a context manager; stops everything it started, in reverse."""

    def __init__(self, tmp: Path, postgres, workers: int = 2):
        self.tmp, self.pg, self.workers = Path(tmp), postgres, workers
        self.stops = []

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        from devtools.netutil import free_port
        from tests.support.webhooks import Webhooks

        self.ldap = SlapdServer(self.tmp / "slapd", users=USERS).start()
        self.stops.append(self.ldap.stop)
        self.redis = RedisServer(self.tmp / "redis").start()
        self.stops.append(self.redis.stop)
        self.mail = Inbox()
        controller = Controller(self.mail, hostname="127.0.0.1", port=free_port(), auth_require_tls=False,
                                authenticator=lambda *a: AuthResult(success=True))
        controller.start()
        self.stops.append(controller.stop)

        home = self.tmp / "airflow"
        rules_dir = self.tmp / "rules"
        rules_dir.mkdir(parents=True)
        (rules_dir / "corp.yaml").write_text(yaml.safe_dump(sync_rules("corp")))
        # approvals time out after 0.004 h = 14.4 s (the scheduler's sweep runs every 2 s here)
        (rules_dir / "quick.yaml").write_text(yaml.safe_dump(sync_rules("quick", timeout_hours=0.004)))
        (rules_dir / "wbk.yaml").write_text(yaml.safe_dump(write_back_rules("wbk")))
        self.run_data = self.tmp / "shared-run-data"  # what S3 / NFS is to workers on several machines
        tag = self.tmp.name.replace("-", "_").lower()
        self.users_urls = {name: self.pg.create_database(f"{tag}_{name}_users") for name in ("corp", "quick", "wbk")}
        self.hooks = Webhooks().start()  # Slack- and Teams-Workflows-compatible endpoints: the rules' notify
        self.stops.append(self.hooks.stop)
        connections = {"corp_ldap": self.ldap.connection_extra(), "smtp_default": smtp_connection(controller.port),
                       **self.hooks.connections()}
        for name, url in self.users_urls.items():
            connections[f"{name}_target"] = {"conn_type": "postgres", "host": "127.0.0.1", "port": self.pg.port,
                                             "login": "postgres", "schema": url.rsplit("/", 1)[1]}
        env = {**admin_env(home, rules_dir, connections), "USERSYNC_RUN_DATA": self.run_data.as_uri(),
               "AIRFLOW__CORE__DAGS_FOLDER": str(self._dags_folder())}
        metadata = self.pg.create_database(f"{tag}_airflow")
        self.cluster = AirflowCluster(home, env, metadata, self.redis.url, workers=self.workers,
                                      users=USERS_BESIDES_ADMIN)
        self.stops.append(self.cluster.stop)
        self.cluster.start()
        for dag_id in ("user_sync__corp", "user_sync__quick", "user_sync__wbk", CONSUMER_DAG):
            self.cluster.wait_for_dag(dag_id)

    def _dags_folder(self) -> Path:
        """The shipped DAG file, and a downstream DAG an admin would add: scheduled on corp's users table."""
        dags = self.tmp / "dags"
        dags.mkdir()
        (dags / "user_sync.py").symlink_to(REPO / "dags" / "user_sync.py")
        (dags / f"{CONSUMER_DAG}.py").write_text(CONSUMER_SOURCE)
        return dags

    def __exit__(self, *exc) -> None:
        while self.stops:
            self.stops.pop()()

    def users(self, name: str = "corp") -> dict[str, dict]:
        engine = create_engine(self.users_urls[name])
        try:
            with engine.connect() as conn:
                return {r["username"]: dict(r) for r in conn.execute(text("SELECT * FROM users")).mappings()}
        finally:
            engine.dispose()

    def run_folder(self, dag_id: str, run_id: str) -> Path:
        from usersync.core.run_folder import folder_name

        return self.run_data / dag_id / folder_name(run_id)

    def summary(self, dag_id: str, run_id: str) -> dict:
        return json.loads((self.run_folder(dag_id, run_id) / "summary.json").read_text())

    def report(self, dag_id: str, run_id: str) -> str:
        """The run's report as the report task stored it in the shared run folder (failed runs too)."""
        return (self.run_folder(dag_id, run_id) / "report.txt").read_text()
