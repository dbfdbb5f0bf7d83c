"""`scherbelberg client` and `dashboard`: how to reach a cluster from here (local state)."""

from __future__ import annotations

import click

from . import common

SNIPPET = """\
from distributed import Client, Security

security = Security(
    tls_ca_file="{ca_file}",
    tls_client_cert="{cert_file}",
    tls_client_key="{key_file}",
    require_encryption=True,
)
client = Client("{address}", security=security)
"""


@common.command("client")
@click.argument("name")
@common.output_option
def client_command(name: str, output: str) -> None:
    """Print the Python snippet that connects a Dask Client to cluster NAME (mutual TLS);
    with `-o json` the scheduler address and the client's TLS files."""
    state = common.require_state(name)
    if not state.scheduler:
        raise common.CliError(f"cluster {name!r} has no scheduler in the local state")
    files = state.client_tls()
    port = int(state.settings.get("scheduler_port", 8786))
    data = {
        "name": name,
        "address": f"tls://{state.scheduler['public_ip']}:{port}",
        "ca_file": str(files.ca_file),
        "cert_file": str(files.cert_file),
        "key_file": str(files.key_file),
    }
    if output == "json":
        common.emit_json(data)
    else:
        click.echo(SNIPPET.format(**data), nl=False)


@common.command("dashboard")
@click.argument("name")
@click.option("--port", default=0, help="Local port (default: any free one).")
def dashboard_command(name: str, port: int) -> None:
    """Open an SSH tunnel to cluster NAME's dashboard and print its local URL; runs until
    Ctrl-C (the dashboard is never exposed on the internet)."""
    state = common.require_state(name)
    if not state.scheduler:
        raise common.CliError(f"cluster {name!r} has no scheduler in the local state")
    try:
        common.run(_tunnel(state, port))
    except KeyboardInterrupt:
        click.echo("tunnel closed", err=True)


async def _tunnel(state: object, port: int) -> None:
    import asyncio

    from ..cluster import ssh
    from ..cluster.state import ClusterState

    assert isinstance(state, ClusterState) and state.scheduler is not None
    server = state.scheduler
    conn = await ssh.connect(
        str(server["public_ip"]),
        state.ssh_key_path().read_text(),
        state.host_keys()[str(server["name"])],
        deadline=30,
    )
    async with conn:
        remote_port = int(state.settings.get("dashboard_port", 8787))
        tunnel = await ssh.Tunnel.open(conn, "127.0.0.1", remote_port, local_port=port)
        async with tunnel:
            click.echo(f"http://127.0.0.1:{tunnel.local_port}/status")
            click.echo("tunnel open; Ctrl-C to close", err=True)
            await asyncio.Event().wait()
