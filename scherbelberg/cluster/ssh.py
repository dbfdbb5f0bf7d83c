"""SSH to cluster servers with pinned host keys.

Why: the servers are fresh machines on the public internet; trusting whatever host key they
present on first contact would let anyone on the path impersonate them. scherbelberg knows
each server's host key in advance (it generates it and hands it over via cloud-init), so
every connection pins exactly that key, and no user ``~/.ssh`` configuration, agent or
known_hosts file takes part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType

import asyncssh

from ..errors import ConfigError, DeadlineExceeded

RETRY_INTERVAL = 0.5
# One attempt may not hang longer than this (a dropped SYN, a stalled handshake).
ATTEMPT_TIMEOUT = 10.0

# Failures expected while a server boots; anything else (notably a host key mismatch or a
# refused login) is raised at once.
_TRANSIENT: tuple[type[BaseException], ...] = (OSError, asyncssh.ConnectionLost)


def generate_ed25519(comment: str = "scherbelberg") -> tuple[str, str]:
    """A new Ed25519 key pair: (private key in OpenSSH format, public key line)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    private = key.export_private_key("openssh").decode("ascii")
    public = key.export_public_key("openssh").decode("ascii").strip()
    return private, public


def _public_key_line(public_key: str) -> str:
    """``type base64`` of an OpenSSH public key line, validated, without its comment."""
    parts = public_key.split()
    if len(parts) < 2:
        raise ConfigError(f"not an OpenSSH public key: {public_key[:40]!r}")
    asyncssh.import_public_key(f"{parts[0]} {parts[1]}")  # raises on garbage
    return f"{parts[0]} {parts[1]}"


async def connect(
    host: str,
    private_key: str,
    host_public_key: str,
    *,
    deadline: float,
    username: str = "root",
    port: int = 22,
) -> asyncssh.SSHClientConnection:
    """Connect as ``username``, trusting only ``host_public_key``.

    Retries refused, reset and timed-out connections every 0.5 s until ``deadline`` seconds
    have passed, then raises ``TimeoutError``. A host key mismatch raises
    ``asyncssh.HostKeyNotVerifiable`` at once, and a refused login ``asyncssh.PermissionDenied``.
    """
    client_key = asyncssh.import_private_key(private_key)
    trusted = asyncssh.import_public_key(_public_key_line(host_public_key))
    options = asyncssh.SSHClientConnectionOptions(
        username=username,
        client_keys=[client_key],
        known_hosts=([trusted], [], []),
        agent_path=None,
        password=None,
        kbdint_auth=False,
        gss_host=None,
        preferred_auth="publickey",
    )
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: BaseException | None = None
    while True:
        remaining = end - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(min(remaining, ATTEMPT_TIMEOUT)):
                # config=None: no ~/.ssh/config may loosen or redirect anything.
                return await asyncssh.connect(host, port, options=options, config=None)
        except asyncssh.HostKeyNotVerifiable:
            raise
        except _TRANSIENT as exc:  # includes TimeoutError
            last = exc
        await asyncio.sleep(max(0.0, min(RETRY_INTERVAL, end - loop.time())))
    reason = f"{type(last).__name__}: {last}" if last else "no attempt made"
    raise DeadlineExceeded(f"no SSH to {host} within {deadline:g} s: {reason}")


async def run(
    conn: asyncssh.SSHClientConnection,
    command: str,
    *,
    timeout: float,
    input: str | None = None,
) -> tuple[int, str, str]:
    """Run ``command`` (with ``input`` on its stdin); return (exit status, stdout, stderr).

    A command killed by a signal reports the negative signal number. Raises ``TimeoutError``
    if it does not finish within ``timeout`` seconds.
    """
    result = await conn.run(command, check=False, timeout=timeout, errors="replace", input=input)
    status = result.returncode if result.returncode is not None else -1
    return status, _text(result.stdout), _text(result.stderr)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class Tunnel:
    """A local port forwarded over SSH, e.g. to the Dask dashboard on the scheduler."""

    def __init__(self, listener: asyncssh.SSHListener, local_host: str) -> None:
        self._listener = listener
        self.local_host = local_host
        self.local_port: int = listener.get_port()

    @classmethod
    async def open(
        cls,
        conn: asyncssh.SSHClientConnection,
        remote_host: str,
        remote_port: int,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
    ) -> Tunnel:
        """Listen on ``local_host:local_port`` (0: any free port) and forward to the remote."""
        listener = await conn.forward_local_port(local_host, local_port, remote_host, remote_port)
        return cls(listener, local_host)

    async def close(self) -> None:
        self._listener.close()
        await self._listener.wait_closed()

    async def __aenter__(self) -> Tunnel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def known_hosts_text(entries: Mapping[str, str]) -> str:
    """known_hosts lines for ``{host or IP: public key}``.

    For the system ``ssh -o UserKnownHostsFile=… -o StrictHostKeyChecking=yes``; comments are
    dropped and hosts checked so that no entry can smuggle in a wildcard or a second line.
    """
    lines = []
    for host, key in entries.items():
        if not host or any(c in host for c in " \t\r\n,*?!#@") or host.startswith("|"):
            raise ConfigError(f"unsafe known_hosts host: {host!r}")
        lines.append(f"{host} {_public_key_line(key)}\n")
    return "".join(lines)
