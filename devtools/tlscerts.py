"""A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI.

``variant`` makes a server certificate a client must refuse: ``wrong_host`` (issued by the CA for another
host name), ``expired`` (issued by the CA, validity ended yesterday), ``self_signed`` (not issued by the CA).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path


@dataclass(frozen=True)
class CertSet:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path, cn: str = "localhost", variant: str | None = None) -> CertSet:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=usersync test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
    if variant:
        _variant(d, variant)
    (d / "server.key").chmod(0o644)  # slapd may drop privileges; the key is throwaway
    return CertSet(d / "ca.pem", d / "server.pem", d / "server.key")


def _variant(d: Path, variant: str) -> None:
    """Replace server.pem with a certificate a client must refuse (same key), using ``cryptography``."""
    from datetime import datetime, timedelta
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key((d / "server.key").read_bytes(), password=None)
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    now = datetime.now(UTC)
    host = "ldap.other.example" if variant == "wrong_host" else "localhost"
    names = [x509.DNSName(host)] + ([] if variant == "wrong_host" else [x509.IPAddress(ip_address("127.0.0.1"))])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    issuer, signer = (subject, key) if variant == "self_signed" else (ca.subject, ca_key)
    start, end = (now - timedelta(days=10), now - timedelta(days=1)) if variant == "expired" else \
        (now - timedelta(hours=1), now + timedelta(days=2))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(signer, hashes.SHA256()))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
