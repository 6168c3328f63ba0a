"""A private OpenLDAP slapd on loopback with an AD-like schema, AD-like size limits and TLS.

``SlapdServer(workdir, users=N).start()`` loads N generated users offline (slapadd), then serves
``ldap://127.0.0.1:<port>`` and ``ldaps://127.0.0.1:<tls_port>``. Unpaged searches by the service account stop
at 1000 entries, as on Active Directory; the rootDSE announces ``defaultNamingContext`` as AD does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from devtools import ad_data
from devtools.netutil import die_with_parent, free_port, start_retrying, stop_process, wait_for_port
from devtools.tlscerts import make_certs

SCHEMA = Path(__file__).with_name("ad.schema")
SERVICE_DN = f"CN=svc-usersync,{ad_data.BASE_DN}"
ADMIN_DN = f"CN=admin,{ad_data.BASE_DN}"


def find_slapd() -> str:
    for candidate in (shutil.which("slapd"), "/usr/sbin/slapd"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("slapd is not installed: apt-get install slapd ldap-utils (make deps does it)")


class SlapdServer:
    def __init__(self, workdir: Path, users: int = 0, service_password: str = "svc-Passw0rd!",
                 admin_password: str = "admin-Passw0rd!",
                 sizelimit: str = "size.soft=1000 size.hard=1000 size.prtotal=unlimited", tls_variant: str | None = None):
        self.dir = Path(workdir)
        self.users = users
        self.service_password = service_password
        self.admin_password = admin_password
        self.sizelimit = sizelimit
        self.tls_variant = tls_variant  # a certificate clients must refuse (see devtools.tlscerts)
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.certs = None

    # -- lifecycle -------------------------------------------------------------------------------
    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        self.certs = make_certs(self.dir / "tls", variant=self.tls_variant)
        (self.dir / "rootdse.ldif").write_text(f"dn:\ndefaultNamingContext: {ad_data.BASE_DN}\n")
        conf = self.dir / "slapd.conf"
        conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {SCHEMA}
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {self.certs.ca}
TLSCertificateFile {self.certs.cert}
TLSCertificateKeyFile {self.certs.key}
rootDSE {self.dir}/rootdse.ldif
sizelimit {self.sizelimit}
database mdb
maxsize 4294967296
suffix "{ad_data.BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {self.admin_password}
directory {self.dir}/data
index objectClass eq
index sAMAccountName eq
access to attrs=userPassword by anonymous auth by * none
access to attrs=facsimileTelephoneNumber by dn.exact="{SERVICE_DN}" write by users read by * none
access to * by users read by * none
""")
        return conf

    def start(self) -> SlapdServer:
        slapd = find_slapd()
        conf = self._write_config()
        ldif = self.dir / "initial.ldif"
        with ldif.open("w") as out:  # written in slices: a million users never sit in memory as one text
            out.write(ad_data.base_ldif(self.service_password))
            for start in range(0, self.users, 10_000):
                out.write(ad_data.users_ldif(min(10_000, self.users - start), start))
        slapadd = Path(slapd).with_name("slapadd")
        subprocess.run([str(slapadd), "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
        return start_retrying(self.resume, self._new_ports)

    def _new_ports(self) -> None:
        self.port, self.tls_port = free_port(), free_port()

    def resume(self) -> SlapdServer:
        """Start the server process again on its data and ports (after ``stop`` or a kill)."""
        slapd, conf = find_slapd(), self.dir / "slapd.conf"
        self.proc = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/", "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=(self.dir / "slapd.log").open("wb"), preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, proc=self.proc)
        wait_for_port(self.tls_port, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.proc = None

    def __enter__(self) -> SlapdServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- admin access for tests and the demo -----------------------------------------------------
    def admin(self):
        """An ldap3 connection bound as the rootdn on the plain port (for changing the directory)."""
        import ldap3

        server = ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE)
        return ldap3.Connection(server, ADMIN_DN, self.admin_password, auto_bind=True, raise_exceptions=True)

    def add_user(self, i: int, **overrides) -> str:
        attrs = {**ad_data.ad_user(i), **overrides}
        dn = ad_data.user_dn(attrs)
        with self.admin() as conn:
            conn.add(dn, attributes=attrs)
        return dn

    def modify_user(self, i: int, **changes) -> None:
        import ldap3

        dn = ad_data.user_dn(ad_data.ad_user(i))
        with self.admin() as conn:
            conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, [v] if v is not None else [])] for k, v in changes.items()})

    def delete_user(self, i: int) -> None:
        with self.admin() as conn:
            conn.delete(ad_data.user_dn(ad_data.ad_user(i)))

    def connection_extra(self, **extra) -> dict:
        """Connection fields for usersync's LDAP hook pointing at this server."""
        return {
            "conn_type": "usersync_ldap",
            "host": "127.0.0.1",
            "login": SERVICE_DN,
            "password": self.service_password,
            "extra": {"ldaps_port": self.tls_port, "ldap_port": self.port, "ca_certs_file": str(self.certs.ca), **extra},
        }
