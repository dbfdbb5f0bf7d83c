"""Mutual TLS for a Dask cluster, with one certificate authority per cluster.

Why: every Dask connection (client, scheduler, workers) must be encrypted and must prove
it belongs to this cluster. A private CA generated locally and never shared with any other
cluster gives exactly that: peers only accept certificates signed by it. All crypto comes
from ``cryptography``; keys are ECDSA P-256, which every OpenSSL behind Python's ``ssl``
handles.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError, StateError

if TYPE_CHECKING:
    import distributed

Role = Literal["scheduler", "worker", "client"]
ROLES: tuple[Role, ...] = ("scheduler", "worker", "client")

# Tolerate small clock skew between this machine and the servers.
_BACKDATE = datetime.timedelta(minutes=5)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _validity(valid_days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if valid_days < 1:
        raise ConfigError(f"valid_days must be at least 1, got {valid_days}")
    now = datetime.datetime.now(datetime.UTC)
    return now - _BACKDATE, now + datetime.timedelta(days=valid_days)


@dataclass(frozen=True)
class CertKey:
    """A leaf certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class ClusterCA:
    """The cluster's certificate authority: signs every node's and the client's certificate."""

    cert_pem: str
    key_pem: str

    @classmethod
    def generate(cls, cluster_name: str, valid_days: int = 825) -> ClusterCA:
        key = _new_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scherbelberg"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"scherbelberg CA {cluster_name}"),
            ]
        )
        not_before, not_after = _validity(valid_days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))

    def issue(
        self,
        role: Role,
        common_name: str,
        addresses: Sequence[str] = (),
        valid_days: int = 825,
    ) -> CertKey:
        """Sign a fresh key for one node or client.

        Dask nodes both accept and open connections, so every leaf is valid for server and
        client authentication. The role is recorded as the subject's OU.
        """
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        ca_cert = x509.load_pem_x509_certificate(self.cert_pem.encode("ascii"))
        ca_key = serialization.load_pem_private_key(self.key_pem.encode("ascii"), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise StateError("the cluster CA key is not an EC key")
        key = _new_key()
        alt_names: list[x509.GeneralName] = [x509.DNSName(common_name)]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        not_before, not_after = _validity(valid_days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scherbelberg"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return CertKey(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def role_of(cert_pem: str) -> str | None:
    """The role recorded in a leaf certificate's OU, if any."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if values else None


@dataclass(frozen=True)
class TlsFiles:
    """Where a CA certificate, a leaf certificate and its key lie on disk."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def write_private(path: Path, text: str) -> None:
    """Write a secret so that it is never readable by others, not even for a moment.

    The file is created 0600 by ``os.open`` under a temporary name and renamed into place, so
    readers see either the old or the new content, never half of it, and old, looser
    permissions never carry over.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def private_directory(directory: Path) -> Path:
    """Create ``directory`` (and parents) with mode 0700, tightening it if it exists."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)
    return directory


def write_tls_files(
    directory: Path, ca_pem: str, leaf: CertKey, prefix: str = "client"
) -> TlsFiles:
    """Write ``ca.pem``, ``<prefix>.pem`` and ``<prefix>-key.pem`` into a private directory."""
    private_directory(directory)
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / f"{prefix}.pem",
        key_file=directory / f"{prefix}-key.pem",
    )
    write_private(files.ca_file, ca_pem)
    write_private(files.cert_file, leaf.cert_pem)
    write_private(files.key_file, leaf.key_pem)
    return files


def client_security(files: TlsFiles) -> distributed.Security:
    """A Dask ``Security`` for the local client: TLS only, with the cluster's client cert."""
    from distributed import Security

    return Security(
        tls_ca_file=str(files.ca_file),
        tls_client_cert=str(files.cert_file),
        tls_client_key=str(files.key_file),
        require_encryption=True,
    )
