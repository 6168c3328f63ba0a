"""Metrics of a real run (real slapd; the DAG in its own Airflow process, configured as an admin configures
``[metrics]``) received by a StatsD listener and by an OTLP/HTTP collector on loopback; the Grafana dashboard in
the repository reads exactly the names a run emits."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from bench.dag_runner import admin_env
from devtools.netutil import free_port
from tests.support.repo import REPO
from tests.support.rules import ad_rules
from usersync.run.metrics import names

pytestmark = pytest.mark.airflow
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"


def _runner(tmp_path, ldap, extra_env: dict[str, str]) -> subprocess.Popen:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "corp.yaml").write_text(yaml.safe_dump(ad_rules()))
    target = {"conn_type": "sqlite", "host": str(tmp_path / "users.db")}
    env = {**admin_env(tmp_path / "airflow", rules_dir, {"corp_ldap": ldap.connection_extra(),
                                                         "usersync_target": target}), **extra_env}
    proc = subprocess.Popen([sys.executable, "-m", "bench.dag_runner", str(REPO / "dags")], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert json.loads(proc.stdout.readline())["ready"]
    proc.stdin.write(json.dumps({"run": "user_sync__corp"}) + "\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["state"] == "success"
    return proc


def _wait(what: str, done, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout  # a hang guard: the exporters send on their own schedule
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.2)


def test_a_runs_metrics_reach_a_statsd_listener(tmp_path, make_slapd):
    ldap = make_slapd(20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    lines: list[str] = []

    def listen():
        while not stop.is_set():
            try:
                lines.extend(sock.recv(65536).decode().splitlines())
            except TimeoutError:
                continue

    stop = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    proc = _runner(tmp_path, ldap, {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                                    "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
                                    "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"})
    try:
        _wait("usersync metrics", lambda: any(line.startswith("airflow.usersync.corp.last_success:") for line in lines))
    finally:
        proc.stdin.close()
        proc.wait(60)
        stop.set()
        listener.join()
        sock.close()
    ours = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in lines if line.startswith("airflow.usersync.")}
    assert ours["airflow.usersync.corp.inserted"] == "20|g" and ours["airflow.usersync.corp.read"] == "20|g"
    assert ours["airflow.usersync.corp.deleted"] == "0|g" and ours["airflow.usersync.corp.blocked"] == "0|g"
    assert ours["airflow.usersync.corp.quarantined"] == "0|g" and ours["airflow.usersync.corp.failed"] == "0|g"
    assert re.fullmatch(r"\d+(\.\d+)?\|ms", ours["airflow.usersync.corp.duration"])
    last = float(ours["airflow.usersync.corp.last_success"].split("|")[0])
    assert abs(last - time.time()) < 600
    assert set(ours) == {f"airflow.{n}" for n in names("corp")}


class _Collector:
    """An OTLP/HTTP metrics receiver: ``POST /v1/metrics`` with an ExportMetricsServiceRequest (protobuf)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        self.points: dict[str, float] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        for metric in scope.metrics:
                            points = metric.gauge.data_points or metric.sum.data_points
                            if points:
                                p = points[-1]
                                owner.points[metric.name] = p.as_double if p.HasField("as_double") else p.as_int
                            elif metric.histogram.data_points or metric.exponential_histogram.data_points:
                                hist = metric.histogram.data_points or metric.exponential_histogram.data_points
                                owner.points[metric.name] = hist[-1].sum
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_runs_metrics_reach_an_otlp_collector_and_the_dashboard_reads_them(tmp_path, make_slapd):
    ldap = make_slapd(12)
    collector = _Collector()
    proc = _runner(tmp_path, ldap, {
        "AIRFLOW__METRICS__OTEL_ON": "True",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{collector.port}/v1/metrics",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf", "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    try:
        _wait("usersync metrics at the collector", lambda: "airflow.usersync.corp.last_success" in collector.points)
    finally:
        proc.stdin.close()
        proc.wait(60)
        collector.stop()
    ours = {k: v for k, v in collector.points.items() if k.startswith("airflow.usersync.")}
    assert ours["airflow.usersync.corp.inserted"] == 12 and ours["airflow.usersync.corp.read"] == 12
    assert ours["airflow.usersync.corp.quarantined"] == 0 and ours["airflow.usersync.corp.duration"] > 0
    assert set(ours) == {f"airflow.{n}" for n in names("corp")}

    # the dashboard: every panel's query names metrics a run emits (as Prometheus names them: dots → "_")
    dashboard = json.loads(DASHBOARD.read_text())
    emitted = {name.replace(".", "_") for name in ours}
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 6
    for query in queries:
        used = {re.sub(r"_(sum|count|bucket)$", "", m.replace("${source}", "corp"))  # a timer's series
                for m in re.findall(r"airflow_usersync_[A-Za-z0-9_${}]+", query)}
        assert used and used <= emitted, query
