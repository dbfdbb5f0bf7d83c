"""Real-looking inputs for cloud-configs: a CA, a node certificate, an ed25519 host key."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from scherbelberg.bootstrap import EnvSpec, NodeConfig, NodeTls

PINS = (("dask", "2024.8.0"), ("distributed", "2024.8.0"), ("msgpack", "1.0.8"))


def _tls() -> NodeTls:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scherbelberg test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return NodeTls(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _host_key() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + " scherbelberg-host"


@pytest.fixture(scope="session")
def tls() -> NodeTls:
    return _tls()


@pytest.fixture(scope="session")
def host_key() -> tuple[str, str]:
    return _host_key()


@pytest.fixture
def make_node(tls: NodeTls, host_key: tuple[str, str]) -> Callable[..., NodeConfig]:
    """make_node(role, **changes): a valid NodeConfig, changed where asked."""

    def make(role: Any = "worker", **changes: Any) -> NodeConfig:
        node = NodeConfig(
            role="worker",
            name="sbg-test-worker-1" if role == "worker" else "sbg-test-scheduler",
            env=EnvSpec(method="pip", python="3.11", pins=PINS),
            tls=tls,
            host_key_private=host_key[0],
            host_key_public=host_key[1],
            private_cidr="10.0.0.0/16",
            scheduler_address="tls://10.0.1.2:8786" if role == "worker" else None,
        )
        return replace(node, role=role, **changes)

    return make


def assert_valid_cloud_config(text: str, tmp_path: Path) -> None:
    """`cloud-init schema` accepts `text`. Must not skip: CI installs cloud-init (Debian 12
    ships 22.4, like Hetzner's image)."""
    cloud_init = shutil.which("cloud-init") or "/usr/bin/cloud-init"
    assert os.path.exists(cloud_init), "cloud-init is not installed (apt-get install cloud-init)"
    path = tmp_path / "user-data"
    path.write_text(text)
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout, result.stdout
