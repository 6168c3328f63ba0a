"""A private PostgreSQL server on loopback, in a temporary data directory.

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` OS user (the
Debian package creates it). Trust authentication on 127.0.0.1 only; the data directory is thrown away.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from devtools.netutil import (
    ExitedBeforeListening,
    die_with_parent,
    free_port,
    start_retrying,
    stop_process,
    wait_for_port,
)


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql (make deps does it)")


class PostgresServer:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run_as(self) -> dict:
        pw = pwd.getpwnam(self._user) if self._user else None

        def prepare() -> None:
            die_with_parent()
            if pw is not None:
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)

        return {"preexec_fn": prepare}

    def start(self) -> PostgresServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            for parent in self.dir.parents:  # the server user must reach its data dir
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, **self._run_as(),
        )
        return start_retrying(self.resume, self._new_port)

    def _new_port(self) -> None:
        self.port = free_port()

    def resume(self) -> PostgresServer:
        """Start the server process again on its data directory and port (after ``stop`` or a kill)."""
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - the server writes its log here until it stops
        self.proc = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            stdout=log, stderr=log, **self._run_as(),
        )
        wait_for_port(self.port, proc=self.proc, timeout=30)
        self._wait_accepting()
        return self

    def _wait_accepting(self, timeout: float = 60.0) -> None:
        """Poll until the server takes sessions: it listens while it still recovers ("starting up") after a kill."""
        import psycopg

        deadline = time.monotonic() + timeout  # a hang guard only
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres").close()
                return
            except psycopg.OperationalError as exc:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ExitedBeforeListening(f"PostgreSQL exited with {self.proc.returncode} while starting up") \
                        from exc
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, timeout=20)  # fast shutdown
        self.proc = None
