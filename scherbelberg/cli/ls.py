"""`scherbelberg ls`: clusters and their nodes, found by label, with cost so far."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from . import common

HOURS_PER_MONTH = 730  # for comparing hourly prices with monthly ones

if TYPE_CHECKING:
    from ..cluster.inventory import ClusterInfo


@common.command("ls")
@click.argument("name", required=False)
@common.output_option
@common.api_options
def ls_command(name: str | None, output: str, endpoint: str | None, token_env: str | None) -> None:
    """List clusters (or cluster NAME) and their nodes.

    Found by label from the API, so clusters made elsewhere show too; `local state` says
    whether this machine holds the cluster's keys. Cost so far: every started hour at the
    hourly price, up to the monthly price.
    """
    from ..cluster import inventory

    state = common.local_state(name) if name else None
    session = common.session(token_env, endpoint, state)
    found = common.run(inventory.clusters(session, name))
    now = time.time()
    if name and not found:
        raise common.CliError(f"no cluster named {name!r} in this Hetzner project")
    if output == "json":
        common.emit_json([c.as_dict(now) for c in found])
        return
    if not found:
        click.echo("no clusters")
    _clusters(found, now)
    if name is None:
        _images_line(session, found)


def _images_line(session: Any, found: list[ClusterInfo]) -> None:
    """Environment images are billed too (per GB and month), also with no cluster at all."""
    from .image import images_and_price

    kept, price = common.run(images_and_price(session))
    if not kept:
        return
    size = sum(i.image_size_gb or 0.0 for i in kept)
    monthly = sum(price.monthly(i.image_size_gb) for i in kept)
    clusters_monthly = sum((c.price_hourly or 0.0) * HOURS_PER_MONTH for c in found)
    more = ", more than the clusters cost" if monthly > clusters_monthly else ""
    common.console().print(
        f"environment images: {len(kept)}, {size:.1f} GB, {monthly:.2f} {price.currency}/month"
        f"{more} (billed until deleted: `scherbelberg image ls`, `scherbelberg image prune`)",
        markup=False,
        highlight=False,
    )


def _clusters(found: list[ClusterInfo], now: float) -> None:
    for cluster in found:
        what = _status_line(cluster, now)
        local = "yes" if cluster.state is not None else "no"
        common.console().print(
            f"[bold]{cluster.name}[/bold]  {what}, {cluster.location or '-'}, "
            f"{common.money(cluster.price_hourly)}/h, "
            f"so far {common.money(cluster.cost_so_far(now), 2)}, "
            f"local state: {local}"
        )
        if cluster.nodes:
            common.table(
                # no role column: the node's name says it (scheduler, worker-0); JSON has it
                ["node", "type", "public ip", "private ip", "status", "age", "€/h", "cost"],
                [
                    [
                        n.name,
                        n.server_type,
                        n.public_ip,
                        n.private_ip,
                        n.status,
                        common.age(n.age_hours(now) * 3600),
                        common.money(n.price_hourly),
                        common.money(n.cost_so_far(now), 2),
                    ]
                    for n in cluster.nodes
                ],
                right=["age", "€/h", "cost"],
                optional=["€/h", "age", "private ip"],  # in a narrow terminal; JSON has all
            )
        others = [r.what for r in cluster.resources if r.kind != "servers"]
        if others:
            # through rich: it wraps between words at the terminal's width
            common.console().print("  also: " + ", ".join(others), markup=False, highlight=False)
        click.echo()


def _status_line(cluster: ClusterInfo, now: float) -> str:
    """creating / ready / incomplete / expiring, with age and what the user can do."""
    status = cluster.status(now)
    age = f", age {common.age(now - cluster.created)}" if cluster.created else ""
    if status == "incomplete":
        return f"incomplete{age} (never became ready, or lost its scheduler: see `cleanup`)"
    if status == "creating":
        return f"creating{age}"
    if status == "expiring" and cluster.lifetime.expires is not None:
        left = cluster.lifetime.expires - now
        when = f"in {common.age(left)}" if left > 0 else "now (run `scherbelberg reap`)"
        return f"ready{age}, expires {when}"
    return f"ready{age}"
