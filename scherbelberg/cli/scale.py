"""`scherbelberg scale`: attach to a cluster, set its worker count, wait, detach."""

from __future__ import annotations

import click

from ..errors import DeadlineExceeded
from . import common


@common.command("scale")
@click.argument("name")
@click.argument("workers", type=click.IntRange(min=0))
@click.option(
    "--timeout", default=900.0, show_default=True, help="Seconds to wait for the new workers."
)
@common.api_options
def scale_command(
    name: str, workers: int, timeout: float, endpoint: str | None, token_env: str | None
) -> None:
    """Scale cluster NAME to WORKERS worker servers and wait until exactly that many are
    registered. Scaling down retires the workers the scheduler chooses (their data moves
    first); the cluster keeps running afterwards."""
    state = common.require_state(name)
    token = common.token(token_env)
    url = common.endpoint(endpoint, state)
    with common.console(stderr=True).status(f"scaling {name} to {workers} workers…"):
        before, after = common.run(_scale(name, workers, token, url, timeout))
    click.echo(f"{name}: {before} → {after} workers")


async def _scale(name: str, n: int, token: str, endpoint: str, timeout: float) -> tuple[int, int]:
    import asyncio
    import inspect

    from ..cluster.hetzner_cluster import HetznerCluster

    cluster = HetznerCluster.from_existing(name, token=token, endpoint=endpoint, asynchronous=True)
    cluster.quiet = True  # no cluster-manager messages on stdout
    await cluster
    try:
        before = len(cluster.worker_spec)
        result = cluster.scale(n)
        if inspect.isawaitable(result):
            await result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # the spec's own correction starts the new servers and waits for their registration
        await asyncio.wait_for(cluster._correct_state(), timeout)
        while len(cluster.scheduler_info.get("workers", {})) != n * _processes(cluster):
            if loop.time() > deadline:
                raise DeadlineExceeded(f"{name} did not reach {n} workers within {timeout:g} s")
            await asyncio.sleep(0.5)
        return before, len(cluster.worker_spec)
    finally:
        await cluster.close()  # from_existing: only detaches


def _processes(cluster: object) -> int:
    return int(getattr(getattr(cluster, "settings", None), "worker_processes", 1))
