"""Helpers for tests that talk to the local Hetzner's machines: SSH with pinned host keys,
cloud-config with host keys, TCP probes from this host or from another host's namespace."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass

import asyncssh
import yaml


@dataclass
class Keys:
    """A client key (authorized for root) and a host key (given to cloud-init, then pinned)."""

    client: asyncssh.SSHKey
    host: asyncssh.SSHKey

    @classmethod
    def generate(cls) -> Keys:
        return cls(
            client=asyncssh.generate_private_key("ssh-ed25519"),
            host=asyncssh.generate_private_key("ssh-ed25519"),
        )

    @property
    def client_public(self) -> str:
        return self.client.export_public_key().decode().strip()

    def cloud_config(self, **extra: object) -> str:
        """#cloud-config that installs our host key, plus `extra` top-level keys."""
        config: dict[str, object] = {
            "ssh_keys": {
                "ed25519_private": self.host.export_private_key().decode(),
                "ed25519_public": self.host.export_public_key().decode().strip(),
            },
            **extra,
        }
        return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


async def ssh_run(host: str, keys: Keys, command: str, deadline: float = 90.0) -> str:
    """Run `command` as root on `host`, verifying the pinned host key; retry until it answers."""
    known_hosts = asyncssh.import_known_hosts(
        f"{host} {keys.host.export_public_key().decode().strip()}\n"
    )
    give_up = time.monotonic() + deadline
    while True:
        try:
            async with asyncssh.connect(
                host,
                username="root",
                client_keys=[keys.client],
                known_hosts=known_hosts,
                connect_timeout=5,
            ) as conn:
                result = await conn.run(command, check=True, timeout=60)
                return str(result.stdout)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            if isinstance(exc, asyncssh.HostKeyNotVerifiable):
                raise
            if isinstance(exc, asyncssh.ProcessError):
                raise
            if time.monotonic() > give_up:
                raise TimeoutError(f"no SSH to {host} within {deadline:.0f} s: {exc!r}") from exc
            await asyncio.sleep(0.5)


PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except socket.timeout:
    print("timeout")
except OSError as exc:
    print("refused" if exc.errno == 111 else f"error {exc.errno}")
else:
    print("open")
"""


def tcp_probe(host: str, port: int, timeout: float = 3.0, netns: str | None = None) -> str:
    """'open', 'refused', 'timeout' or 'error N' for a TCP connect, optionally from `netns`."""
    command = [sys.executable, "-c", PROBE, host, str(port), str(timeout)]
    if netns is not None:
        command = ["nsenter", f"--net={netns}", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 10)
    return result.stdout.strip() or f"error {result.stderr.strip()[-200:]}"
