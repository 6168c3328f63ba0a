"""A private MariaDB server on loopback (Debian's mariadb-server), in a temporary data directory.

As root the server runs as the ``mysql`` OS user. The root account uses a password over TCP on 127.0.0.1.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from devtools.netutil import die_with_parent, free_port, start_retrying, stop_process, wait_for_port


def _bin(*names: str) -> str:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and Path(candidate).exists():
                return candidate
    raise RuntimeError(f"MariaDB ({names[0]}) is not installed: apt-get install mariadb-server (make deps does it)")


class MariaDbServer:
    def __init__(self, workdir: Path, root_password: str = "Maria-Root-Pw1"):
        self.dir = Path(workdir)
        self.port = free_port()
        self.root_password = root_password
        self.proc: subprocess.Popen | None = None
        self.user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def start(self) -> MariaDbServer:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            for path in (self.dir, data):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            for parent in self.dir.parents:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        subprocess.run(
            [_bin("mariadb-install-db", "mysql_install_db"), f"--datadir={data}", f"--user={self.user}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--no-defaults"],
            check=True, capture_output=True,
        )
        start_retrying(lambda: self._launch(data), self._new_port)
        import pymysql

        conn = pymysql.connect(unix_socket=f"{self.dir}/mysqld.sock", user="root", password="")
        with conn.cursor() as c:
            c.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            c.execute("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY %s", (self.root_password,))
            c.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        conn.close()
        return self

    def _new_port(self) -> None:
        self.port = free_port()

    def _launch(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [_bin("mariadbd", "mysqld"), "--no-defaults", f"--datadir={data}", f"--user={self.user}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.dir}/mysqld.sock",
             f"--pid-file={self.dir}/mysqld.pid", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=(self.dir / "mariadb.log").open("wb"), preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, proc=self.proc, timeout=60)

    def connect(self, database: str | None = None):
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password=self.root_password,
                               database=database, autocommit=True, charset="utf8mb4")

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)
        self.proc = None
