"""Pinned-host-key SSH, proven against a real asyncssh server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncssh
import pytest

from scherbelberg.cluster import ssh


class _Server(asyncssh.SSHServer):
    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return dest_host == "127.0.0.1"  # allow local forwards to the echo target only


async def _handle(process: asyncssh.SSHServerProcess[str]) -> None:
    """A tiny 'shell': ``echo X``, ``fail N`` (stderr + exit N), ``sleep S``."""
    word, _, rest = (process.command or "").partition(" ")
    if word == "echo":
        process.stdout.write(rest + "\n")
        process.exit(0)
    elif word == "fail":
        process.stderr.write("failing\n")
        process.exit(int(rest))
    elif word == "sleep":
        await asyncio.sleep(float(rest))
        process.exit(0)
    else:
        process.stderr.write(f"unknown command {word}\n")
        process.exit(127)


@dataclass
class SshServer:
    port: int
    host_public: str
    client_private: str
    server: asyncssh.SSHAcceptor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(host_private: str, client_public: str, port: int = 0) -> asyncssh.SSHAcceptor:
    return await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        port,
        server_host_keys=[asyncssh.import_private_key(host_private)],
        authorized_client_keys=asyncssh.import_authorized_keys(client_public + "\n"),
        process_factory=_handle,
        config=None,
    )


@pytest.fixture
async def server() -> AsyncIterator[SshServer]:
    host_private, host_public = ssh.generate_ed25519("host")
    client_private, client_public = ssh.generate_ed25519("client")
    acceptor = await _start(host_private, client_public)
    yield SshServer(acceptor.get_port(), host_public, client_private, acceptor)
    acceptor.close()
    await acceptor.wait_closed()


@pytest.fixture
def count_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    attempts: list[float] = []
    real = asyncssh.connect

    async def counting(*args: Any, **kwargs: Any) -> asyncssh.SSHClientConnection:
        attempts.append(time.monotonic())
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncssh, "connect", counting)
    yield attempts


def test_generate_ed25519() -> None:
    private, public = ssh.generate_ed25519()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith("ssh-ed25519 AAAA") and public.endswith(" scherbelberg")
    key = asyncssh.import_private_key(private)
    assert key.export_public_key().decode().split()[:2] == public.split()[:2]
    assert ssh.generate_ed25519()[0] != private


async def test_connect_and_run(server: SshServer) -> None:
    conn = await ssh.connect(
        "127.0.0.1", server.client_private, server.host_public, deadline=10, port=server.port
    )
    async with conn:
        assert await ssh.run(conn, "echo hello world", timeout=10) == (0, "hello world\n", "")
        assert await ssh.run(conn, "fail 3", timeout=10) == (3, "", "failing\n")
        with pytest.raises(TimeoutError):
            await ssh.run(conn, "sleep 5", timeout=0.3)


async def test_wrong_host_key_is_not_retried(
    server: SshServer, count_attempts: list[float]
) -> None:
    _, impostor = ssh.generate_ed25519()
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await ssh.connect(
            "127.0.0.1", server.client_private, impostor, deadline=10, port=server.port
        )
    # one attempt, not retried until the 10 s deadline (counted, not timed: no load can flake it)
    assert len(count_attempts) == 1


async def test_unknown_client_key_is_refused_at_once(
    server: SshServer, count_attempts: list[float]
) -> None:
    stranger, _ = ssh.generate_ed25519()
    with pytest.raises(asyncssh.PermissionDenied):
        await ssh.connect("127.0.0.1", stranger, server.host_public, deadline=10, port=server.port)
    assert len(count_attempts) == 1


async def test_deadline_when_nothing_listens(count_attempts: list[float]) -> None:
    port = _free_port()
    _, host_public = ssh.generate_ed25519()
    client_private, _ = ssh.generate_ed25519()
    start = time.monotonic()
    with pytest.raises(
        TimeoutError, match=r"no SSH to 127\.0\.0\.1 within 1\.5 s: ConnectionRefusedError"
    ):
        await ssh.connect("127.0.0.1", client_private, host_public, deadline=1.5, port=port)
    # it gave up only once the deadline had passed (a floor: load can only make it later)
    assert time.monotonic() - start >= 1.5
    # retried, never sooner than every 0.5 s: at most one attempt at 0, 0.5, 1.0 and 1.5 s
    assert 2 <= len(count_attempts) <= 4
    gaps = [b - a for a, b in itertools.pairwise(count_attempts)]
    assert all(gap >= 0.45 for gap in gaps)


async def test_retries_until_the_server_comes_up() -> None:
    port = _free_port()
    host_private, host_public = ssh.generate_ed25519()
    client_private, client_public = ssh.generate_ed25519()

    async def late_server() -> asyncssh.SSHAcceptor:
        await asyncio.sleep(1.0)
        return await _start(host_private, client_public, port)

    starting = asyncio.create_task(late_server())
    conn = await ssh.connect("127.0.0.1", client_private, host_public, deadline=10, port=port)
    acceptor = await starting
    try:
        async with conn:
            assert (await ssh.run(conn, "echo up", timeout=10))[1] == "up\n"
    finally:
        acceptor.close()
        await acceptor.wait_closed()


async def test_tunnel_forwards_bytes(server: SshServer) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    conn = await ssh.connect(
        "127.0.0.1", server.client_private, server.host_public, deadline=10, port=server.port
    )
    try:
        async with conn, await ssh.Tunnel.open(conn, "127.0.0.1", target_port) as tunnel:
            assert tunnel.local_port > 0
            assert tunnel.local_port != target_port
            reader, writer = await asyncio.open_connection("127.0.0.1", tunnel.local_port)
            payload = bytes(range(256)) * 1000
            writer.write(payload)
            await writer.drain()
            received = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
            assert received == payload
            writer.close()
            await writer.wait_closed()
        # closed: the local port no longer accepts connections
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", tunnel.local_port)
    finally:
        target.close()
        await target.wait_closed()


def test_known_hosts_text() -> None:
    _, key_a = ssh.generate_ed25519("a comment")
    _, key_b = ssh.generate_ed25519()
    text = ssh.known_hosts_text({"203.0.113.5": key_a, "c-scheduler": key_b})
    lines = text.splitlines()
    assert lines == [
        "203.0.113.5 " + " ".join(key_a.split()[:2]),
        "c-scheduler " + " ".join(key_b.split()[:2]),
    ]
    known = asyncssh.import_known_hosts(text)
    assert (
        known.match("c-scheduler", "", 22)[0][0].export_public_key().decode().split()[1]
        == (key_b.split()[1])
    )
    for bad_host in ["*", "a,b", "x y", "a\nb", "", "|1|hashed"]:
        with pytest.raises(ValueError):
            ssh.known_hosts_text({bad_host: key_a})
    with pytest.raises(ValueError):
        ssh.known_hosts_text({"h": "ssh-ed25519"})
    with pytest.raises(ValueError):
        ssh.known_hosts_text({"h": "ssh-ed25519 notbase64!!"})
