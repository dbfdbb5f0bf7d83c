"""The cluster CA, proven with a real Dask scheduler speaking TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed import Client, Scheduler, Security
from distributed.comm import connect

from scherbelberg.cluster.tls import (
    CertKey,
    ClusterCA,
    TlsFiles,
    client_security,
    role_of,
    write_tls_files,
)


@pytest.fixture(scope="module")
def ca() -> ClusterCA:
    return ClusterCA.generate("test")


@pytest.fixture(scope="module")
def other_ca() -> ClusterCA:
    return ClusterCA.generate("other")


@pytest.fixture
async def scheduler(ca: ClusterCA, tmp_path: Path) -> AsyncIterator[Scheduler]:
    leaf = ca.issue("scheduler", "test-scheduler", addresses=["127.0.0.1"])
    files = write_tls_files(tmp_path / "scheduler", ca.cert_pem, leaf, prefix="scheduler")
    security = Security(
        tls_ca_file=str(files.ca_file),
        tls_scheduler_cert=str(files.cert_file),
        tls_scheduler_key=str(files.key_file),
        require_encryption=True,
    )
    async with Scheduler(
        security=security, protocol="tls", host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0"
    ) as s:
        yield s


def _port(scheduler: Scheduler) -> int:
    return int(scheduler.address.rsplit(":", 1)[1])


def test_ca_and_leaf_fields(ca: ClusterCA) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    leaf = ca.issue("worker", "c-worker-1", addresses=["10.0.0.3", "2001:db8::1"])
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["c-worker-1"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.3", "2001:db8::1"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "c-worker-1"
    assert role_of(leaf.cert_pem) == "worker"
    # a new key per call
    assert ca.issue("worker", "c-worker-1").key_pem != leaf.key_pem


def test_issue_rejects_bad_input(ca: ClusterCA) -> None:
    with pytest.raises(ValueError, match="role"):
        ca.issue("admin", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ca.issue("worker", "x", addresses=["not-an-ip"])
    with pytest.raises(ValueError, match="valid_days"):
        ca.issue("worker", "x", valid_days=0)


def test_files_are_private(ca: ClusterCA, tmp_path: Path) -> None:
    files = write_tls_files(tmp_path / "tls", ca.cert_pem, ca.issue("client", "me"))
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    for path in (files.ca_file, files.cert_file, files.key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert files.cert_file.name == "client.pem"
    assert files.key_file.name == "client-key.pem"
    assert "PRIVATE KEY" in files.key_file.read_text()
    # rewriting replaces content and keeps 0600
    again = write_tls_files(tmp_path / "tls", ca.cert_pem, ca.issue("client", "me"))
    assert again == files
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600


def _client_files(tmp_path: Path, trusted_ca_pem: str, leaf: CertKey) -> TlsFiles:
    return write_tls_files(tmp_path / "client", trusted_ca_pem, leaf)


async def test_client_from_same_ca_connects(
    scheduler: Scheduler, ca: ClusterCA, tmp_path: Path
) -> None:
    assert scheduler.address.startswith("tls://127.0.0.1:")
    files = _client_files(tmp_path, ca.cert_pem, ca.issue("client", "me"))
    security = client_security(files)
    assert security.require_encryption
    async with Client(scheduler.address, security=security, asynchronous=True) as client:
        identity = await client.scheduler.identity()
        assert identity["address"] == scheduler.address
        assert await client.run_on_scheduler(lambda: 6 * 7) == 42


async def _tls_exchange(port: int, ctx: ssl.SSLContext) -> bytes:
    """Open TLS to the scheduler, send a byte and read one back (TLS 1.3 reports a refused
    client certificate only on the first read)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        writer.write(b"hello")
        await writer.drain()
        return await asyncio.wait_for(reader.read(1), 5)
    finally:
        writer.close()


async def test_client_from_other_ca_is_refused(
    scheduler: Scheduler, ca: ClusterCA, other_ca: ClusterCA, tmp_path: Path
) -> None:
    # The foreign client even trusts our CA, so it is the *scheduler* that refuses it.
    files = _client_files(tmp_path, ca.cert_pem, other_ca.issue("client", "me"))
    args = client_security(files).get_connection_args("client")
    with pytest.raises(OSError, match=r"(?i)unknown.ca"):
        comm = await connect(scheduler.address, timeout="2s", **args)
        await comm.close()

    # Same at the TLS layer: the scheduler aborts the handshake with an "unknown CA" alert.
    ctx = ssl.create_default_context(cafile=str(files.ca_file))
    ctx.check_hostname = False
    ctx.load_cert_chain(files.cert_file, files.key_file)
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        await _tls_exchange(_port(scheduler), ctx)


async def test_client_without_cert_is_refused(scheduler: Scheduler, ca: ClusterCA) -> None:
    ctx = ssl.create_default_context(cadata=ca.cert_pem)
    ctx.check_hostname = False
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        await _tls_exchange(_port(scheduler), ctx)


async def test_client_distrusting_scheduler_refuses(
    scheduler: Scheduler, ca: ClusterCA, other_ca: ClusterCA, tmp_path: Path
) -> None:
    # A client of another cluster does not accept this scheduler either.
    files = _client_files(tmp_path, other_ca.cert_pem, other_ca.issue("client", "me"))
    with pytest.raises(OSError, match=r"(?i)certificate"):
        comm = await connect(
            scheduler.address,
            timeout="2s",
            **client_security(files).get_connection_args("client"),
        )
        await comm.close()


async def test_plain_tcp_client_is_refused(scheduler: Scheduler) -> None:
    plain = scheduler.address.replace("tls://", "tcp://")
    with pytest.raises(OSError):
        comm = await connect(plain, timeout="2s")
        await comm.close()

    # A raw plaintext byte stream gets nothing back but a closed connection or a TLS alert.
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(scheduler))
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 5)
    except ConnectionError:
        data = b""
    finally:
        writer.close()
    assert b"HTTP" not in data and b"dask" not in data.lower()
    # Anything that came back is a TLS alert record (content type 21), not application data.
    assert data == b"" or data[0] == 21
