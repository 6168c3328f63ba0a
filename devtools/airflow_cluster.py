"""Airflow's distributed topology as native processes on loopback — what docker-compose.yaml runs in containers.

A PostgreSQL metadata database, Redis as the Celery broker, and ``api-server``, ``scheduler``,
``dag-processor``, ``triggerer`` and N ``celery worker`` processes, each started in its own process group and
stopped by process group (an Airflow process leaves children: task runners, gunicorn/uvicorn workers). Every
worker shares the run data folder (``USERSYNC_RUN_DATA``), as workers on several machines would share S3 or
NFS. ``SETTINGS`` is the topology's configuration; tests/test_compose.py checks that docker-compose.yaml says the
same.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devtools.netutil import free_port, group_members, stop_groups

#: what makes a triggered run start fast, with its measured effect and cost (docs/benchmarks.md): the scheduler loop
#: sleeps 0.1 s instead of 1 s when idle (each hand-over between tasks waits for the next loop)
FAST_HANDOVER = {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}
#: the LocalExecutor's workers come from a forkserver that has imported what every task needs
#: (``usersync_airflow.runtime.preload``), so a task process starts with it loaded
LOCAL_EXECUTOR = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__PARALLELISM": "4",  # the default 32 starts up to 32 worker processes
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "usersync_airflow.runtime.preload",
    **FAST_HANDOVER,
}
#: the settings that make the topology; the compose file must agree (tests/test_compose.py)
SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    # each Celery worker imports usersync_airflow.runtime.preload once; its task processes inherit it
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "usersync_airflow.runtime.celery_config.CELERY_CONFIG",
    **FAST_HANDOVER,
}
#: settings every deployment must set itself (addresses and secrets), named so the compose test can check them
REQUIRED = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY",
            "USERSYNC_RUN_DATA", "AIRFLOW_CONN_USERSYNC_TARGET")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the test workers: each reports its own name (they share one machine)."""
    return os.environ.get("USERSYNC_WORKER_NAME") or socket.getfqdn()


#: what ``/api/v2/monitor/health`` reports for each component
HEALTH = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class AirflowCluster:
    """Start with ``with AirflowCluster(...) as cluster:``; ``cluster.api(...)`` talks REST as the admin.

    ``components`` and ``workers=0`` with ``extra={"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}`` give the
    one-machine scheduler path (the benchmark's)."""

    def __init__(self, home: Path, env: dict[str, str], metadata_url: str, broker_url: str = "", workers: int = 2,
                 extra: dict[str, str] | None = None, components: tuple[str, ...] = COMPONENTS,
                 users: dict[str, str] | None = None):
        """``users``: more sign-ins besides ``admin`` (name → simple-auth-manager role), e.g. a second approver."""
        self.home, self.port, self.workers, self.components = Path(home), free_port(), workers, components
        self.home.mkdir(parents=True, exist_ok=True)
        self.passwords = {name: secrets.token_urlsafe(12) for name in {"admin": "admin", **(users or {})}}
        self.password = self.passwords["admin"]  # the admin's, for this cluster only
        (self.home / "passwords.json").write_text(json.dumps(self.passwords))
        if users:
            everyone = {"admin": "admin", **users}
            extra = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in everyone.items()),
                     **(extra or {})}
        self.env = {
            **env, **SETTINGS,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # tests trigger at once (compose: paused)
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url.replace("+psycopg:", "+psycopg_async:"),
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # connection secrets and Variables (a kept Webex token) encrypted at rest, as compose sets it
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devtools.airflow_cluster.worker_hostname",
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **(extra or {}),
        }
        airflow = Path(sys.executable).with_name("airflow")
        self.airflow = str(airflow)
        self.env["PATH"] = f"{airflow.parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.token: str | None = None
        self._tokens: dict[str, str] = {}

    # --- processes -----------------------------------------------------------------------------------------

    def __enter__(self) -> AirflowCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        migrate = subprocess.run([self.airflow, "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-3000:]}")
        # loopback only: the API server on 127.0.0.1; the triggerer's and workers' log servers (which bind every
        # interface) stay off — they share AIRFLOW_HOME's log folder with the API server, which reads it directly
        args = {"api-server": ["--port", str(self.port), "--host", "127.0.0.1"], "triggerer": ["--skip-serve-logs"]}
        for name in self.components:
            self._spawn(name, [name, *args.get(name, [])])
        for n in range(1, self.workers + 1):
            self._spawn(f"worker{n}", ["celery", "worker", "--celery-hostname", f"worker{n}@%h", "--skip-serve-logs"],
                        {"USERSYNC_WORKER_NAME": f"worker{n}"})
        self._wait_ready()
        self.startup_seconds = time.monotonic() - started

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - the server writes its log here until it stops
        self.procs[name] = subprocess.Popen([self.airflow, *args], env={**self.env, **(env or {})}, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to every process group, then SIGKILL to what is left after ``timeout``."""
        stop_groups(list(self.procs.values()), grace=timeout)

    def group_members(self) -> list[int]:
        """PIDs still alive in any of the cluster's process groups (empty after ``stop``)."""
        return [pid for proc in self.procs.values() for pid in group_members(proc.pid)]

    def log_tail(self, name: str, chars: int = 4000) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-chars:]

    # --- REST ----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def login(self, username: str = "admin", password: str | None = None) -> str:
        import httpx

        answer = httpx.post(f"{self.url}/auth/token", json={"username": username,
                                                             "password": password or self.password}, timeout=30)
        answer.raise_for_status()
        return answer.json()["access_token"]

    def token_of(self, username: str) -> str:
        """A signed-in token of one of the cluster's users (cached)."""
        if username == "admin":
            assert self.token is not None
            return self.token
        if username not in self._tokens:
            self._tokens[username] = self.login(username, self.passwords[username])
        return self._tokens[username]

    def api(self, method: str, path: str, body: dict | None = None, ok: bool = True, as_user: str = "admin") -> Any:
        import httpx

        answer = httpx.request(method, f"{self.url}{path}", json=body, timeout=30,
                               headers={"Authorization": f"Bearer {self.token_of(as_user)}"})
        if ok:
            if answer.status_code >= 400:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
            return answer.json() if answer.content else None
        return answer

    def _wait_ready(self, timeout: float = 240) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{self.log_tail(name)}")
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                parts = ("metadatabase", *(HEALTH[c] for c in self.components if c in HEALTH))
                if all(health.get(p, {}).get("status") == "healthy" for p in parts):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow did not become healthy in {timeout:.0f} s; logs in {self.home}")
            time.sleep(1)
        self.token = self.login()

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/api/v2/dags/{dag_id}", ok=False).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed:\n{self.log_tail('dag-processor')}")
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict | None = None, as_user: str = "admin") -> str:
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}},
                       as_user=as_user)
        return run["dag_run_id"]

    def task_state(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}")["state"]

    def wait_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.task_state(dag_id, run_id, task_id)) not in states:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{task_id} of {run_id} is {state}, not {states}, after {timeout:.0f} s")
            time.sleep(0.5)
        return state

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while (run := self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))["state"] not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(0.5)
        return run

    def wait_idle(self, dag_id: str, timeout: float = 300) -> None:
        """Wait until no run of ``dag_id`` is queued or running (one a failed test left behind, say)."""
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=queued&state=running")["total_entries"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} still has a queued or running run after {timeout:.0f} s")
            time.sleep(0.5)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return entry["value"]
