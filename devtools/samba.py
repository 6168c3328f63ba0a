"""A private Samba 4 Active Directory domain controller on loopback (Debian's samba-ad-dc).

Real AD behaviour where it matters: simple binds on plain LDAP are refused ("strongerAuthRequired"), the
rootDSE announces the default naming context, objectGUID is binary, built-in accounts and disabled accounts
exist. Samba's ports are fixed (389, 636 on 127.0.0.1): one DC per machine at a time. Provisioning takes ~6 s,
so tests share one DC per session. Users are added over LDAPS as Administrator.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from devtools.netutil import die_with_parent, stop_process, wait_for_port, wait_until_closed
from devtools.tlscerts import make_certs

REALM, DOMAIN = "EXAMPLE.TEST", "EXAMPLE"
BASE_DN = "DC=example,DC=test"
STAFF_OU = f"OU=Staff,{BASE_DN}"
#: schemaIDGUIDs an admin's delegation names: the user class, and the attributes write-back writes in the tests
USER_CLASS_GUID = "bf967aba-0de6-11d0-a285-00aa003049e2"
IP_PHONE_GUID = "4d146e4a-48d4-11d1-a9c3-0000f80367c1"
TELEPHONE_NUMBER_GUID = "bf967a49-0de6-11d0-a285-00aa003049e2"


def _bin(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"Samba's {name} is not installed: apt-get install samba-ad-dc samba-ad-provision (make deps)")


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class SambaDc:
    ldap_port, ldaps_port = 389, 636

    def __init__(self, workdir: Path, admin_password: str = "Adm1n-Passw0rd!"):
        self.dir = Path(workdir)
        self.admin_password = admin_password
        self.admin = f"Administrator@{REALM.lower()}"
        self.proc: subprocess.Popen | None = None
        self.certs = None
        self.conf: Path | None = None

    def start(self) -> SambaDc:
        for port in (self.ldap_port, self.ldaps_port):
            if _port_taken(port):
                raise RuntimeError(f"127.0.0.1:{port} is taken (a distro slapd or samba service?); "
                                   "Samba AD's ports are fixed — stop that service first")
        dc = self.dir / "dc"
        # the DNS partitions (SAMBA_INTERNAL) are provisioned so that a backup can be restored as another DC;
        # no DNS server runs ("server services = ldap" below)
        subprocess.run(
            [_bin("samba-tool"), "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}",
             "--server-role=dc", "--dns-backend=SAMBA_INTERNAL", "--use-rfc2307", "--host-name=dc1",
             f"--adminpass={self.admin_password}", f"--targetdir={dc}",
             "--option=interfaces = lo", "--option=bind interfaces only = yes"],
            check=True, capture_output=True,
        )
        self.certs = make_certs(self.dir / "tls")
        self.certs.key.chmod(0o600)  # Samba refuses a key others can read (CVE-2013-4476)
        self._launch(dc)
        with self.connect() as conn:
            conn.add(STAFF_OU, ["top", "organizationalUnit"], {"ou": "Staff"})
        return self

    def _launch(self, dc: Path) -> None:
        """Make ``dc``'s smb.conf private to this machine's test run (services, paths, our certificate) and
        start Samba on it."""
        (dc / "run").mkdir(exist_ok=True)
        conf = dc / "etc" / "smb.conf"
        private = ("server services", "log file", "pid directory", "winbindd socket directory", "ncalrpc dir",
                   "dsdb:schema update allowed", "tls ")
        lines = [line for line in conf.read_text().splitlines() if not line.strip().startswith(private)]
        extra = [
            "\tserver services = ldap",
            "\tdsdb:schema update allowed = yes",
            f"\tlog file = {dc}/log.%m",
            f"\tpid directory = {dc}/run",
            f"\twinbindd socket directory = {dc}/run/winbindd",
            f"\tncalrpc dir = {dc}/run/ncalrpc",
            "\ttls enabled = yes",
            f"\ttls keyfile = {self.certs.key}",
            f"\ttls certfile = {self.certs.cert}",
            f"\ttls cafile = {self.certs.ca}",
        ]
        at = lines.index("[global]") + 1
        conf.write_text("\n".join(lines[:at] + extra + lines[at:]) + "\n")
        self.conf = conf
        self.proc = subprocess.Popen([_bin("samba"), "--foreground", "--no-process-group", "-s", str(conf)],
                                     stdout=(self.dir / "samba.out").open("ab"), stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        wait_for_port(self.ldaps_port, proc=self.proc, timeout=60)

    def replace_with_restored_dc(self, name: str) -> str:
        """Stop this DC and start, on the same address, another DC of the same domain restored from its backup
        under the server name ``name`` (``samba-tool domain backup restore --newservername``): same users and
        objectGUIDs, another ``dsServiceName`` and ``invocationId`` — as when the connection's next DC answers.
        Returns the new DC's ``dsServiceName``."""
        import ldap3

        self.stop()
        wait_until_closed(self.ldaps_port, timeout=60)  # Samba's children let go of the fixed ports last
        backups = self.dir / f"backup-{name}"
        subprocess.run([_bin("samba-tool"), "domain", "backup", "offline", f"--targetdir={backups}",
                        "-s", str(self.conf)], check=True, capture_output=True)
        target = self.dir / name.lower()
        subprocess.run([_bin("samba-tool"), "domain", "backup", "restore",
                        f"--backup-file={next(backups.glob('*.tar.bz2'))}", f"--newservername={name}",
                        f"--targetdir={target}"], check=True, capture_output=True)
        self._launch(target)
        with self.connect() as conn:
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName"])
            value = conn.response[0]["attributes"]["dsServiceName"]
            return str(value[0] if isinstance(value, list) else value)

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)
        self.proc = None

    def connect(self):
        """An ldap3 connection over LDAPS, bound as Administrator."""
        import ssl

        import ldap3

        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.certs.ca))
        server = ldap3.Server("127.0.0.1", port=self.ldaps_port, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(server, self.admin, self.admin_password, auto_bind=True, raise_exceptions=True,
                                auto_referrals=False, check_names=False)

    def add_user(self, sam: str, given: str, surname: str, ou: str = STAFF_OU, disabled: bool = False, **attrs) -> str:
        dn = f"CN={given} {surname},{ou}"
        with self.connect() as conn:
            conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
                "sAMAccountName": sam, "givenName": given, "sn": surname,
                "userPrincipalName": f"{sam}@{REALM.lower()}",
                "userAccountControl": str(514 if disabled else 512), **attrs,
            })
        return dn

    def add_account(self, sam: str, password: str, ou: str = STAFF_OU) -> str:
        """An ordinary, enabled domain account that can bind (no admin rights): returns its userPrincipalName."""
        import ldap3

        dn = self.add_user(sam, "Service", sam, ou=ou, disabled=True)
        with self.connect() as conn:
            conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
                             "userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
        return f"{sam}@{REALM.lower()}"

    def delegate(self, ou: str, account_dn: str, sddl_rights: str, object_type: str) -> None:
        """Grant ``account_dn`` a right on the user objects below ``ou`` as an admin delegates it — with
        ``samba-tool dsacl set`` on the DC and an inherited object ACE (``sddl_rights`` e.g. ``WP``, ``object_type`` the
        attribute's schemaIDGUID)."""
        import ldap3
        from ldap3.protocol.formatters.formatters import format_sid

        with self.connect() as conn:
            conn.search(account_dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
            sid = format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])
        ace = f"(OA;CIIO;{sddl_rights};{object_type};{USER_CLASS_GUID};{sid})"
        # on the DC itself, against its database (as docs/write-back.md shows): the running DC sees the change.
        # The DC now running may be a restored one (replace_with_restored_dc): its own folder holds the database
        assert self.conf is not None, "start() first"
        done = subprocess.run([_bin("samba-tool"), "dsacl", "set", "-s", str(self.conf),
                               "-H", str(self.conf.parent.parent / "private" / "sam.ldb"),
                               f"--objectdn={ou}", f"--sddl={ace}"], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"samba-tool dsacl set failed ({done.returncode}): {done.stderr[-1500:]}")

    def values(self, dn: str, *attributes: str) -> dict[str, list[str]]:
        """The entry's values of ``attributes`` as the directory holds them now."""
        import ldap3

        with self.connect() as conn:
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
            raw = conn.response[0]["raw_attributes"]
        return {a: sorted(v.decode() for v in raw.get(a, [])) for a in attributes}

    # --- directory changes, as an admin makes them (tests of renames, disables, groups, delta) -------------

    def add_ou(self, name: str) -> str:
        dn = f"OU={name},{BASE_DN}"
        with self.connect() as conn:
            conn.add(dn, ["top", "organizationalUnit"], {"ou": name})
        return dn

    def add_group(self, name: str, ou: str, members: list[str] = ()) -> str:
        dn = f"CN={name},{ou}"
        with self.connect() as conn:
            conn.add(dn, ["top", "group"], {"sAMAccountName": name, **({"member": list(members)} if members else {})})
        return dn

    def modify(self, dn: str, **attrs) -> None:
        import ldap3

        with self.connect() as conn:
            conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, [str(v)] if v is not None else [])] for k, v in attrs.items()})

    def set_member(self, group: str, member: str, present: bool = True) -> None:
        import ldap3

        with self.connect() as conn:
            conn.modify(group, {"member": [(ldap3.MODIFY_ADD if present else ldap3.MODIFY_DELETE, [member])]})

    def rename(self, dn: str, sam: str) -> str:
        """A new account name (sAMAccountName, UPN and CN), as for a marriage; returns the new DN."""
        parent = dn.split(",", 1)[1]
        with self.connect() as conn:
            conn.modify_dn(dn, f"CN={sam}")
        new_dn = f"CN={sam},{parent}"
        self.modify(new_dn, sAMAccountName=sam, userPrincipalName=f"{sam}@{REALM.lower()}")
        return new_dn

    def move(self, dn: str, ou: str) -> str:
        rdn = dn.split(",", 1)[0]
        with self.connect() as conn:
            conn.modify_dn(dn, rdn, new_superior=ou)
        return f"{rdn},{ou}"

    def delete(self, dn: str) -> None:
        with self.connect() as conn:
            conn.delete(dn)

    def restore(self, guid: str, dn: str, **attrs) -> str:
        """Bring a deleted account back from its tombstone with the same objectGUID, as AD's Recycle Bin does: an
        LDAP modify under the Show-Deleted control that removes ``isDeleted`` and gives the object its DN again;
        then ``attrs`` (a tombstone keeps few attributes). Returns the DN."""
        import uuid

        import ldap3
        from ldap3.utils.conv import escape_bytes

        show_deleted = [("1.2.840.113556.1.4.417", True, None)]
        with self.connect() as conn:
            conn.search(BASE_DN, f"(objectGUID={escape_bytes(uuid.UUID(guid.strip('{}')).bytes_le)})", ldap3.SUBTREE,
                        attributes=["isDeleted"], controls=show_deleted)
            (tombstone,) = [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]
            if not conn.modify(tombstone, {"isDeleted": [(ldap3.MODIFY_DELETE, [])],
                                           "distinguishedName": [(ldap3.MODIFY_REPLACE, [dn])]}, controls=show_deleted):
                raise RuntimeError(f"reanimation of {tombstone} refused: {conn.result}")
        if attrs:
            self.modify(dn, **attrs)
        return dn

    def guid(self, dn: str) -> str:
        import uuid

        import ldap3

        with self.connect() as conn:
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
            return "{" + str(uuid.UUID(bytes_le=conn.response[0]["raw_attributes"]["objectGUID"][0])) + "}"

    def connection_extra(self, **extra) -> dict:
        return {"conn_type": "usersync_ldap", "host": "127.0.0.1", "login": self.admin,
                "password": self.admin_password,
                "extra": {"ldaps_port": self.ldaps_port, "ldap_port": self.ldap_port,
                          "ca_certs_file": str(self.certs.ca), **extra}}
