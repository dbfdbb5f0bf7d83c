"""`scherbelberg ssh`, `scp` and `logs`: the system ssh with the cluster's pinned host keys.

No trust on first use, ever: a known_hosts file is written for each call from the host keys
scherbelberg generated for the nodes (`-o HostKeyAlias=<server name>`,
`StrictHostKeyChecking=yes`), and the cluster's own key is the only identity offered.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from . import common

if TYPE_CHECKING:
    from ..cluster.state import ClusterState


class RemoteCommand(click.Command):
    """Everything after `--` is the remote command (so it is never read as NODE)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["remote_command"] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def node_server(state: ClusterState, node: str) -> dict[str, Any]:
    """The recorded server of NODE: `scheduler`, `worker-0`, … or the full server name."""
    servers = [state.scheduler] if state.scheduler else []
    servers += list(state.workers.values())
    for server in servers:
        name = str(server["name"])
        if node in (name, name.removeprefix(f"{state.name}-")):
            return server
    known = [str(s["name"]).removeprefix(f"{state.name}-") for s in servers]
    raise common.CliError(
        f"cluster {state.name!r} has no node {node!r} (nodes: {', '.join(known) or 'none'})"
    )


@contextlib.contextmanager
def ssh_options(state: ClusterState, server_name: str) -> Iterator[list[str]]:
    """Options for ssh/scp that pin `server_name`'s host key (file deleted afterwards)."""
    from ..cluster.ssh import known_hosts_text

    key = state.host_keys().get(server_name)
    if key is None:
        raise common.CliError(f"no pinned host key for {server_name} in the local state")
    with tempfile.TemporaryDirectory(prefix="scherbelberg-ssh-") as directory:
        known_hosts = os.path.join(directory, "known_hosts")
        with open(known_hosts, "w") as handle:
            handle.write(known_hosts_text({server_name: key}))
        yield [
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"HostKeyAlias={server_name}",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "PasswordAuthentication=no",
            "-o", "ConnectTimeout=15",
            "-o", "LogLevel=ERROR",
            "-i", str(state.ssh_key_path()),
        ]  # fmt: skip


def run_ssh(state: ClusterState, node: str, command: list[str], *, tty: bool | None = None) -> int:
    server = node_server(state, node)
    with ssh_options(state, str(server["name"])) as options:
        argv = ["ssh", *options]
        if tty is False:
            argv.append("-T")
        argv += ["-l", "root", str(server["public_ip"])]
        if command:
            argv += ["--", *command]
        return subprocess.call(argv)


@common.command("ssh", cls=RemoteCommand)
@click.argument("name")
@click.argument("node", default="scheduler")
def ssh_command(name: str, node: str) -> None:
    """Open a shell on NODE of cluster NAME, or run a command: `ssh NAME [NODE] [-- COMMAND]`.

    NODE is `scheduler` (the default) or a worker as `ls` shows it (`worker-0`, …). The host
    key is pinned; the remote command's exit code is passed through.
    """
    command = click.get_current_context().meta.get("remote_command", [])
    state = common.require_state(name)
    sys.exit(run_ssh(state, node, command))


@common.command("logs")
@click.argument("name")
@click.argument("node", default="scheduler")
@click.option("--lines", "-n", default=100, show_default=True, help="Lines of each log.")
@click.option("--bootstrap/--no-bootstrap", default=True, help="Include the bootstrap log.")
def logs_command(name: str, node: str, lines: int, bootstrap: bool) -> None:
    """Show NODE's bootstrap (cloud-init) log and its Dask service journal."""
    state = common.require_state(name)
    server = node_server(state, node)
    role = "scheduler" if state.scheduler and server is state.scheduler else "worker"
    parts = []
    if bootstrap:
        parts.append(
            f"echo '--- /var/log/scherbelberg/bootstrap.log'; "
            f"tail -n {lines} /var/log/scherbelberg/bootstrap.log"
        )
    parts.append(
        f"echo '--- journalctl -u dask-{role}'; journalctl -u dask-{role} -n {lines} --no-pager"
    )
    sys.exit(run_ssh(state, node, ["; ".join(parts)], tty=False))


@common.command("scp")
@click.argument("name")
@click.argument("source")
@click.argument("target")
@click.option("--recursive", "-r", is_flag=True, help="Copy directories.")
def scp_command(name: str, source: str, target: str, recursive: bool) -> None:
    """Copy a file to or from a node: `scp NAME ./data.csv worker-0:/tmp/` or
    `scp NAME scheduler:/var/log/syslog .` (exactly one side is NODE:PATH)."""
    state = common.require_state(name)
    remote = [p for p in (source, target) if _remote(p)]
    if len(remote) != 1:
        raise click.UsageError("exactly one of SOURCE and TARGET must be NODE:PATH")
    node, path = remote[0].split(":", 1)
    server = node_server(state, node)
    spec = f"root@{server['public_ip']}:{path}"
    with ssh_options(state, str(server["name"])) as options:
        argv = ["scp", *options, *(["-r"] if recursive else [])]
        argv += [spec if _remote(source) else source, spec if _remote(target) else target]
        sys.exit(subprocess.call(argv))


def _remote(path: str) -> bool:
    head = path.split("/", 1)[0]
    return ":" in head and not os.path.exists(path)
