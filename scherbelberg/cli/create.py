"""`scherbelberg create`: a cluster that persists after the command, with live progress.

The cluster object runs here until every node is ready, then only detaches
(`shutdown_on_close=False`): the servers keep running until `scherbelberg destroy`. Ctrl-C
while creating cancels the start, whose rollback deletes whatever was made (by label); the
command then checks the project and says what, if anything, is left.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from . import common

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from ..cluster.hetzner_cluster import HetznerCluster
    from ..cluster.nodes import HetznerNode
    from ..cluster.timeline import Recorder

STAGES = {  # the node's furthest event -> what it is doing now (in the order they happen)
    None: "requesting server",
    "requested": "creating server",
    "created": "booting",
    "booted": "booted",
    "environment": "installing environment",
    "dask": "starting dask",
    "bootstrapped": "registering",
    "ready": "ready",
}
ORDER = [stage for stage in STAGES if stage is not None]


@common.command("create")
@click.option("--name", default=None, help="Cluster name (default: sbg-xxxxxx).")
@click.option("--workers", "-w", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--scheduler-type", default=None, help="Server type of the scheduler.")
@click.option("--worker-type", default=None, help="Server type of each worker.")
@click.option("--location", "-l", default=None, help="Hetzner location, e.g. fsn1.")
@click.option("--image", default=None, help="System image name or snapshot id.")
@click.option("--env", "env_method", type=click.Choice(["auto", "pip", "conda"]), default=None)
@click.option(
    "--package", "-p", "packages", multiple=True, help="Extra package for the nodes (repeatable)."
)
@click.option("--worker-processes", type=click.IntRange(min=1), default=None)
@click.option("--ttl", default=None, help="Delete the cluster this long after creation (8h).")
@click.option(
    "--idle-timeout",
    default=None,
    help="Delete the cluster after this long without tasks and clients (30m).",
)
@click.option(
    "--reaper",
    type=click.Choice(["client", "node"]),
    default=None,
    help="Who enforces --ttl/--idle-timeout: client (`scherbelberg reap`, default) or node "
    "(also the scheduler itself; the API token then goes to that node, root-only).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the inputs and print what the cluster would cost (IPv4 included); make nothing.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    help="Wait until Dask is up (default), or only until every server is requested.",
)
@click.option(
    "--timeline",
    "timeline_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Draw the start (one row per node, its stages in time) to this PNG (or .svg/.pdf), "
    "its records beside it as .json; also when the start fails. Needs scherbelberg[timeline].",
)
@common.output_option
@common.api_options
def create_command(
    name: str | None,
    workers: int,
    scheduler_type: str | None,
    worker_type: str | None,
    location: str | None,
    image: str | None,
    env_method: str | None,
    packages: tuple[str, ...],
    worker_processes: int | None,
    ttl: str | None,
    idle_timeout: str | None,
    reaper: str | None,
    dry_run: bool,
    wait: bool,
    timeline_file: str | None,
    output: str,
    endpoint: str | None,
    token_env: str | None,
) -> None:
    """Create a cluster that keeps running after this command (until `destroy`).

    Shows each node's progress, then the scheduler address, how to reach the dashboard and
    the hourly price. Ctrl-C while creating deletes everything made so far.
    """
    from ..cluster.state import generate_cluster_name, validate_cluster_name

    if timeline_file is not None:
        _check_timeline(timeline_file, dry_run, wait)
    name = validate_cluster_name(name or generate_cluster_name())
    kwargs: dict[str, Any] = {
        "n_workers": workers,
        "name": name,
        "token": common.token(token_env),
        "endpoint": common.endpoint(endpoint),
        "location": location,
        "scheduler_server_type": scheduler_type,
        "worker_server_type": worker_type,
        "image": image,
        "env_method": env_method,
        "extra_packages": list(packages) or None,
        "worker_processes": worker_processes,
        "ttl": ttl,
        "idle_timeout": idle_timeout,
        "reaper": reaper,
    }
    if dry_run:
        _dry_run(kwargs, output)
        return
    err = common.console(stderr=True)
    try:
        summary = common.run(_create(kwargs, err, wait, output, timeline_file))
    except KeyboardInterrupt:
        left = _left_over(kwargs, name)
        if left is None:
            raise common.CliError(
                f"interrupted; could not check what is left of {name}: "
                f"run `scherbelberg destroy {name}`"
            ) from None
        if left:
            raise common.CliError(
                f"interrupted; {len(left)} resources of {name} are left "
                f"({', '.join(left[:3])}…): run `scherbelberg destroy {name}`"
            ) from None
        click.echo(f"error: interrupted; cluster {name} was rolled back, nothing is left", err=True)
        sys.exit(130)
    _emit(summary, output)


def _dry_run(kwargs: dict[str, Any], output: str) -> None:
    """The same checks as a create, then the price; nothing is made, no state is written."""
    from ..cluster.hetzner_cluster import HetznerCluster

    kwargs = dict(kwargs)
    cost = HetznerCluster.estimate(kwargs.pop("n_workers"), **kwargs)
    if output == "json":
        common.emit_json(cost.as_dict())
        return
    workers = f"{cost.workers} worker{'' if cost.workers == 1 else 's'}"
    click.echo(f"a cluster of 1 scheduler + {workers} in {cost.location} would cost (gross):")
    per_hour, per_month = f"{cost.currency}/h", f"{cost.currency}/month"
    common.table(
        ["", "count", per_hour, per_month],
        [[p["what"], p["count"], f"{p['hourly']:.4f}", f"{p['monthly']:.2f}"] for p in cost.parts],
        right=["count", per_hour, per_month],
    )
    click.echo(
        f"total: {cost.price_hourly:.4f} {cost.currency} per hour, at most "
        f"{cost.price_monthly:.2f} {cost.currency} per month (nothing was created)"
    )


def _emit(summary: dict[str, Any], output: str) -> None:
    if output == "json":
        common.emit_json(summary)
    else:
        _print_summary(summary)


async def _create(
    kwargs: dict[str, Any], err: Console, wait: bool, output: str, timeline_file: str | None
) -> dict[str, Any]:
    from rich.live import Live

    from ..cluster.hetzner_cluster import HetznerCluster
    from ..cluster.timeline import Recorder

    cluster = HetznerCluster(asynchronous=True, shutdown_on_close=False, **kwargs)
    cluster.quiet = True  # its messages would mix into stdout (-o json); the summary says it
    cluster.auto_image.may_make = wait  # --no-wait leaves at once: no one would drive a build
    started = time.time()
    n = kwargs["n_workers"]
    recorder = Recorder(cluster, n) if timeline_file else None
    # transient: on failure only the one error line stays; the final table is printed below
    live = Live(_progress(cluster, n, started), console=err, refresh_per_second=4, transient=True)
    try:
        await _start_live(cluster, live, n, started, wait, recorder)
    except BaseException as exc:  # a picture of where it stopped
        if recorder is not None and timeline_file is not None:
            _write_timeline(recorder, _outcome(exc), timeline_file, err)
        raise
    err.print(_progress(cluster, n, started))
    if recorder is not None and timeline_file is not None:
        _write_timeline(recorder, "ready", timeline_file, err)
    summary = _summary(cluster, n, started, wait)
    if not wait:
        # every server exists and bootstraps on its own: mark the cluster complete (else
        # `cleanup` would take it for an abandoned create) and leave at once, without
        # cancelling the start (that would roll the cluster back) or closing anything
        await cluster.mark_ready()
        _emit(summary, output)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    await cluster.close()  # shutdown_on_close=False: only detaches
    return summary


async def _start_live(
    cluster: HetznerCluster,
    live: Live,
    n: int,
    started: float,
    wait: bool,
    recorder: Recorder | None,
) -> None:
    """Start the cluster, showing its progress, until ready (or all requested: --no-wait)."""
    import asyncio

    with live:

        async def watch() -> None:
            while True:
                live.update(_progress(cluster, n, started))
                if recorder is not None:
                    recorder.update()
                if not wait and _all_requested(cluster, n):
                    return
                await asyncio.sleep(0.25)

        watcher = asyncio.ensure_future(watch())
        starting = asyncio.ensure_future(_start(cluster))
        try:
            done, _ = await asyncio.wait({watcher, starting}, return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()
            live.update(_progress(cluster, n, started))
        except asyncio.CancelledError:
            starting.cancel()  # its rollback deletes what was made
            await asyncio.gather(starting, return_exceptions=True)
            raise
        finally:
            watcher.cancel()


def _check_timeline(path: str, dry_run: bool, wait: bool) -> None:
    """Before anything is made: a timeline needs a start to watch, and matplotlib."""
    from ..cluster import timeline

    if dry_run or not wait:
        raise common.CliError(
            "--timeline draws a start until ready: not with "
            + ("--dry-run" if dry_run else "--no-wait")
        )
    try:
        timeline.check_available(path)
    except ValueError as exc:
        raise common.CliError(str(exc)) from None


def _outcome(exc: BaseException) -> str:
    import asyncio

    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
        return "interrupted"
    return f"failed: {common.one_line(exc)}"


def _write_timeline(recorder: Recorder, outcome: str, path: str, err: Console) -> None:
    """Draw what the recorder saw; a picture that cannot be written is a warning only."""
    from ..cluster import timeline

    try:
        picture, records = timeline.write(recorder.snapshot(outcome), path)
    except Exception as exc:
        why = common.one_line(exc)
        err.print(f"warning: could not write the timeline {path}: {why}", markup=False)
        return
    err.print(f"timeline: {picture} (records: {records})", soft_wrap=True, markup=False)


async def _start(cluster: HetznerCluster) -> None:
    await cluster


def _nodes(cluster: HetznerCluster) -> list[HetznerNode]:
    from ..cluster.nodes import HetznerNode

    nodes: list[HetznerNode] = []
    scheduler = getattr(cluster, "scheduler", None)
    if not isinstance(scheduler, HetznerNode):
        given = (getattr(cluster, "scheduler_spec", None) or {}).get("cls")
        scheduler = getattr(given, "node", None)
    if isinstance(scheduler, HetznerNode):
        nodes.append(scheduler)
    nodes += [w for w in cluster.workers.values() if isinstance(w, HetznerNode)]
    return nodes


def _all_requested(cluster: HetznerCluster, n: int) -> bool:
    nodes = _nodes(cluster)
    return len(nodes) == n + 1 and all(node.server is not None for node in nodes)


def _progress(cluster: HetznerCluster, n: int, started: float) -> Any:
    from rich import box
    from rich.table import Table

    grid = Table(
        title=f"{cluster.name}: 1 scheduler + {n} worker{'' if n == 1 else 's'} "
        f"({time.time() - started:.0f} s)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("node", "stage", "s"):
        grid.add_column(column, justify="right" if column == "s" else "left", overflow="fold")
    nodes = {node.name: node for node in _nodes(cluster)}
    names = [f"{cluster.name}-scheduler", *sorted(set(nodes) - {f"{cluster.name}-scheduler"})]
    for name in names:
        node = nodes.get(name)
        events = node.events if node is not None else {}
        # Hetzner's actions may finish after the node booted: go by order, not by time
        last = max((e for e in events if e in ORDER), key=ORDER.index, default=None)
        done = last == "ready"
        since = events.get("requested", started)
        elapsed = (events["ready"] if done else time.time()) - since
        stage = STAGES.get(last, last or "waiting")
        grid.add_row(
            name.removeprefix(f"{cluster.name}-"),
            f"[green]{stage}[/green]" if done else stage,
            f"{elapsed:.0f}" if events else "",
        )
    missing = n - len([x for x in nodes if x != f"{cluster.name}-scheduler"])
    if missing > 0:
        grid.add_row(f"{missing} worker(s)", "waiting for the scheduler's address", "")
    return grid


def _summary(cluster: HetznerCluster, n: int, started: float, waited: bool) -> dict[str, Any]:
    s = cluster.settings
    scheduler = _nodes(cluster)[0]
    assert scheduler.server is not None
    hourly = cluster.price(n).price_hourly  # servers and their IPv4 addresses
    return {
        "name": cluster.name,
        "ready": waited,
        "workers": n,
        "scheduler_address": f"tls://{scheduler.server.public_ip}:{s.scheduler_port}",
        "dashboard_command": f"scherbelberg dashboard {cluster.name}",
        "client_command": f"scherbelberg client {cluster.name}",
        "price_hourly": None if hourly is None else round(hourly, 6),
        "seconds": round(time.time() - started, 1),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    name = summary["name"]
    if summary["ready"]:
        click.echo(f"cluster {name} is ready ({summary['seconds']:.0f} s)")
    else:
        click.echo(f"cluster {name}: servers requested; the nodes bootstrap on their own")
        click.echo(f"  watch:      scherbelberg ls {name}")
    click.echo(f"  scheduler:  {summary['scheduler_address']}")
    click.echo(f"  dashboard:  {summary['dashboard_command']}")
    click.echo(f"  connect:    {summary['client_command']}")
    price = common.money(summary["price_hourly"])
    click.echo(f"  price:      {price} per hour incl. IPv4, until destroyed")
    click.echo(f"  destroy:    scherbelberg destroy {name}")


def _left_over(kwargs: dict[str, Any], name: str) -> list[str] | None:
    """What the project still holds of the cluster (None: could not check)."""
    from ..cluster import inventory
    from ..hetzner.session import HetznerSession

    try:
        session = HetznerSession(kwargs["token"], kwargs["endpoint"])
        found = common.run(inventory.clusters(session, name))
    except Exception:
        return None
    return [r.what for c in found for r in c.resources]
