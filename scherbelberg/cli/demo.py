"""`scherbelberg demo`: the whole product on this machine, on the embedded local Hetzner.

Starts a local Hetzner (building its machine image the first time), creates a cluster of one
scheduler and two workers, runs a real Dask computation, prints result and timings, and
deletes everything again.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings

import click
from rich.console import Console


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
        click.echo(
            f"error: {exc}".splitlines()[0] if "\n" not in str(exc) else f"error: {exc}", err=True
        )
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

        import dask.array as da
        from distributed import Client
        from distributed.versions import VersionMismatchWarning

        # nodes run the image's Python patch release (3.11.2 on Debian 12); major.minor and
        # every package are checked by the cluster itself, which raises on a real mismatch
        warnings.filterwarnings("ignore", category=VersionMismatchWarning)

        from ..cluster.hetzner_cluster import HetznerCluster

        mark = time.monotonic()
        with console.status(f"creating a cluster: 1 scheduler + {workers} workers…"):
            cluster = HetznerCluster(
                n_workers=workers,
                token=hetzner.token,
                endpoint=hetzner.endpoint,
                pip_index_url=info["pip_index_url"],
                client_address_url=info["echo_url"],
            )
        timings["cluster ready"] = time.monotonic() - mark
        try:
            console.print(f"cluster {cluster.name}: scheduler {cluster.scheduler_address}")
            console.print(f"dashboard (through an SSH tunnel): {cluster.dashboard_link}")
            with Client(cluster) as client:
                mark = time.monotonic()
                x = da.random.RandomState(0).random((20_000, 2_000), chunks=(2_000, 2_000))
                mean = float(x.mean().compute())
                who = sorted(set(client.run(lambda: __import__("socket").gethostname()).values()))
                timings["computation"] = time.monotonic() - mark
            console.print(
                f"mean of 40 million random numbers: {mean:.6f} (computed on {', '.join(who)})"
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
    if not 0.49 < mean < 0.51:
        raise RuntimeError(f"the computation gave {mean}, expected about 0.5")
    console.print("demo finished: everything was created, used and deleted again")
