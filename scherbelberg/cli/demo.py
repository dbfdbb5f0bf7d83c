"""`scherbelberg demo`: the whole product on this machine, on the embedded local Hetzner.

Starts a local Hetzner (building its machine image the first time), creates a cluster of one
scheduler and two workers, runs a real Dask computation (π by Monte Carlo, with plain
futures), prints result and timings, and deletes everything again.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import click
from rich.console import Console

from ..errors import ScherbelbergError

CHUNKS = 40
CHUNK_POINTS = 100_000


@click.command("demo")
@click.option("--workers", default=2, show_default=True, help="Worker servers to create.")
@click.option("--debug", is_flag=True, help="Show tracebacks and the emulator's log.")
def demo_command(workers: int, debug: bool) -> None:
    """Try scherbelberg on the embedded local Hetzner (needs Linux and root)."""
    console = Console(stderr=True)
    from ..emulator.machines.nspawn import missing_requirements

    missing = missing_requirements()
    if missing:
        click.echo(
            "error: this machine cannot run the local Hetzner: " + "; ".join(missing), err=True
        )
        sys.exit(2)
    try:
        _run(console, workers, debug)
    except Exception as exc:  # one line unless --debug
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)  # a bootstrap failure keeps its log tail
        sys.exit(1)


def _run(console: object, workers: int, debug: bool) -> None:
    from rich.console import Console

    assert isinstance(console, Console)
    from ..emulator.control import LocalHetzner
    from ..emulator.machines.image import base_image_ready

    timings: dict[str, float] = {}
    started = time.monotonic()
    if not base_image_ready():
        console.print("building the machine image (first time only, about a minute)…")
    os.environ.setdefault("SCHERBELBERG_STATE_DIR", tempfile.mkdtemp(prefix="scherbelberg-demo-"))
    log = None if debug else open(os.devnull, "w")  # noqa: SIM115 - closed below
    with LocalHetzner(stderr=log) as hetzner:
        timings["local Hetzner up"] = time.monotonic() - started
        info = hetzner.control.info()
        console.print(f"local Hetzner at {hetzner.endpoint} (machines are real nspawn containers)")

        from distributed import Client

        from ..cluster.hetzner_cluster import HetznerCluster

        mark = time.monotonic()
        with console.status(f"creating a cluster: 1 scheduler + {workers} workers…"):
            cluster = HetznerCluster(
                n_workers=workers,
                token=hetzner.token,
                endpoint=hetzner.endpoint,
                pip_index_url=info["pip_index_url"],
                python_downloads_json_url=info["python_downloads_json_url"],
                client_address_url=info["echo_url"],
                # the demo's local Hetzner is gone afterwards: an image for next time would
                # only make the demo wait for it
                env_images=False,
            )
        timings["cluster ready"] = time.monotonic() - mark
        try:
            console.print(f"cluster {cluster.name}: scheduler {cluster.scheduler_address}")
            console.print(f"dashboard (through an SSH tunnel): {cluster.dashboard_link}")
            with Client(cluster) as client:
                mark = time.monotonic()

                # plain futures: the package alone is enough (no numpy on this client); a
                # function of this process, so that it travels by value (nodes do not have
                # scherbelberg installed)
                def _hits_in_circle(seed: int, points: int = CHUNK_POINTS) -> int:
                    """How many of `points` random points in the unit square fall in the
                    quarter circle."""
                    import random

                    rng = random.Random(seed)
                    return sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(points))

                hits = client.map(_hits_in_circle, range(CHUNKS), pure=False)
                pi = 4 * client.submit(sum, hits).result() / (CHUNKS * CHUNK_POINTS)
                who = sorted(set(client.run(lambda: __import__("socket").gethostname()).values()))
                timings["computation"] = time.monotonic() - mark
            console.print(
                f"π from {CHUNKS * CHUNK_POINTS / 1e6:g} million random points: {pi:.4f} "
                f"(computed on {', '.join(who)})"
            )
        finally:
            mark = time.monotonic()
            with console.status("deleting the cluster…"):
                cluster.close()
            timings["cluster deleted"] = time.monotonic() - mark
    if log is not None:
        log.close()
    timings["total"] = time.monotonic() - started
    for what, seconds in timings.items():
        console.print(f"  {what:<18} {seconds:6.1f} s")
    if not 3.13 < pi < 3.15:
        raise ScherbelbergError(f"the computation gave π = {pi}, expected about 3.14")
    console.print("demo finished: everything was created, used and deleted again")
