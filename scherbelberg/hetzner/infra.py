"""The per-cluster resources around the servers: SSH key, private network, firewall, spread
placement groups. All labelled; deletion works by label alone, so it needs no local state."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import HetznerError
from . import labels
from .session import HetznerSession

log = logging.getLogger(__name__)

SPREAD_GROUP_SIZE = 10  # Hetzner's limit of servers per spread placement group
RESOURCE_KINDS = ("firewalls", "networks", "placement_groups", "ssh_keys")
RELEASE_SECONDS = 120.0  # how long `resource_in_use` after deleting servers is waited out


@dataclass
class Infra:
    ssh_key_id: int | None = None
    network_id: int | None = None
    firewall_id: int | None = None
    placement_group_ids: list[int] = field(default_factory=list)


def subnet_for(cidr: str) -> str:
    """The subnet servers get addresses from: the network's first /20 (4094 hosts)."""
    network = ipaddress.IPv4Network(cidr)
    return str(next(network.subnets(new_prefix=max(20, network.prefixlen))))


def firewall_rules(allowed_sources: list[str], scheduler_port: int) -> list[dict[str, Any]]:
    """Only SSH, the scheduler's TLS port and ping, only from the allowed sources; the dashboard
    stays closed (reach it through the SSH tunnel). Private-network traffic is not filtered."""
    rule = {"direction": "in", "source_ips": allowed_sources, "destination_ips": []}
    return [
        {**rule, "protocol": "tcp", "port": "22", "description": "ssh"},
        {**rule, "protocol": "tcp", "port": str(scheduler_port), "description": "dask scheduler"},
        {**rule, "protocol": "icmp", "port": None, "description": "ping"},
    ]


async def create(
    session: HetznerSession,
    cluster: str,
    *,
    extra_labels: dict[str, str],
    ssh_public_key: str,
    cidr: str,
    network_zone: str,
    allowed_sources: list[str],
    scheduler_port: int,
    infra: Infra,
) -> Infra:
    """Create what is missing in `infra` (filled in as it goes, so a failure can roll back)."""
    doing = f"creating cluster {cluster}"
    if infra.ssh_key_id is None:
        body = await session.create(
            doing,
            "ssh_keys",
            {
                "name": f"{cluster}-key",
                "public_key": ssh_public_key,
                "labels": labels.for_resource(cluster, "ssh-key", extra_labels),
            },
        )
        infra.ssh_key_id = int(body["ssh_key"]["id"])
    if infra.network_id is None:
        body = await session.create(
            doing,
            "networks",
            {
                "name": f"{cluster}-net",
                "ip_range": cidr,
                "subnets": [
                    {"type": "cloud", "ip_range": subnet_for(cidr), "network_zone": network_zone}
                ],
                "labels": labels.for_resource(cluster, "network", extra_labels),
            },
        )
        infra.network_id = int(body["network"]["id"])
    if infra.firewall_id is None:
        body = await session.create(
            doing,
            "firewalls",
            {
                "name": f"{cluster}-fw",
                "rules": firewall_rules(allowed_sources, scheduler_port),
                "labels": labels.for_resource(cluster, "firewall", extra_labels),
            },
        )
        infra.firewall_id = int(body["firewall"]["id"])
    return infra


async def new_placement_group(
    session: HetznerSession, cluster: str, number: int, extra_labels: dict[str, str]
) -> int:
    """A spread group (each member on another host); a cluster needs one per 10 servers."""
    body = await session.create(
        f"creating cluster {cluster}",
        "placement_groups",
        {
            "name": f"{cluster}-spread-{number}",
            "type": "spread",
            "labels": labels.for_resource(cluster, "placement-group", extra_labels),
        },
    )
    return int(body["placement_group"]["id"])


async def list_labelled(session: HetznerSession, kind: str, selector: str) -> list[dict[str, Any]]:
    return await list_all(session, kind, {"label_selector": selector})


async def list_all(
    session: HetznerSession, kind: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every `kind` the API lists (with `params`), page after page."""
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page is not None:
        body = await session.request(
            f"listing {kind.replace('_', ' ')}",
            "GET",
            f"/{kind}",
            params={**(params or {}), "page": page, "per_page": 50},
        )
        items.extend(body.get(kind, []))
        page = body.get("meta", {}).get("pagination", {}).get("next_page")
    return items


async def delete_servers_now(
    session: HetznerSession, server_ids: list[int], *, doing: str
) -> list[int]:
    """Ask Hetzner to delete servers; returns the delete actions to wait for."""
    actions = []
    for server_id in server_ids:
        try:
            body = await session.request(doing, "DELETE", f"/servers/{server_id}")
        except HetznerError as exc:
            if exc.code == "not_found":
                continue  # already gone: deleting is idempotent
            raise
        actions.append(int(body["action"]["id"]))
    return actions


async def delete_servers(
    session: HetznerSession, server_ids: list[int], *, deadline: float, doing: str
) -> None:
    """Delete servers and wait until Hetzner reports them gone (one batched wait)."""
    actions = await delete_servers_now(session, server_ids, doing=doing)
    await session.wait_for_actions(actions, deadline=deadline, doing=doing)


async def delete_cluster(session: HetznerSession, cluster: str, *, deadline: float) -> list[str]:
    """Delete every resource labelled with this cluster; servers first (firewalls and networks
    in use cannot go before them). Idempotent: returns what it deleted."""
    doing = f"deleting cluster {cluster}"
    selector = labels.cluster_selector(cluster)
    deleted: list[str] = []
    servers = await list_labelled(session, "servers", selector)
    await delete_servers(session, [s["id"] for s in servers], deadline=deadline, doing=doing)
    deleted += [f"server {s['name']}" for s in servers]
    for kind in RESOURCE_KINDS:
        for item in await list_labelled(session, kind, selector):
            await delete_resource(session, kind, int(item["id"]), doing=doing)
            deleted.append(f"{kind.rstrip('s').replace('_', ' ')} {item['name']}")
    return deleted


async def delete_resource(
    session: HetznerSession, kind: str, resource_id: int, *, doing: str
) -> None:
    """DELETE one firewall, network, placement group or SSH key; already gone is fine.

    Right after its servers were deleted, Hetzner can answer 422 `resource_in_use` for a
    firewall, network or placement group for a few seconds (hetzner-reality.md: Terraform's
    provider, the Ansible collection and hetzner-k3s retry it): retried for RELEASE_SECONDS.
    """
    try:
        await session.request(
            doing,
            "DELETE",
            f"/{kind}/{resource_id}",
            retry_for=RELEASE_SECONDS,
            in_use_is_transient=kind != "ssh_keys",
        )
    except HetznerError as exc:
        if exc.code != "not_found":
            raise


async def delete_known(session: HetznerSession, cluster: str, infra: Infra) -> None:
    """Delete the infrastructure we made, by id (no listing: every request counts)."""
    doing = f"deleting cluster {cluster}"
    targets = [("firewalls", infra.firewall_id), ("networks", infra.network_id)]
    targets += [("placement_groups", gid) for gid in infra.placement_group_ids]
    targets += [("ssh_keys", infra.ssh_key_id)]
    for kind, resource_id in targets:
        if resource_id is not None:
            await delete_resource(session, kind, resource_id, doing=doing)
