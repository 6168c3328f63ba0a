"""A private Redis server on loopback (Debian's ``redis-server``): the Celery broker of the distributed tests.
Nothing is persisted; the working directory is thrown away."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from devtools.netutil import die_with_parent, free_port, start_retrying, stop_process, wait_for_port


class RedisServer:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server is not installed: apt-get install redis-server (make deps does it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        return start_retrying(lambda: self._launch(binary), self._new_port)

    def _new_port(self) -> None:
        self.port = free_port()

    def _launch(self, binary: str) -> RedisServer:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - the server writes its log here until it stops
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=log, stderr=log, preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
